"""Live events against an in-process Socket.IO server that behaves like Open WebUI
with respect to tokens: every (re)connect carries the current JWT, renewed first
when it expired; a pasted JWT that cannot be renewed is reported once, with the fix."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import socketio
from aiohttp import web

from bridge.openwebui.client import Credentials, OpenWebUIClient
from bridge.openwebui.live import LiveEvents


def make_jwt(exp: float, subject: str = "user-1") -> str:
    """A JWT-shaped token with an ``exp`` claim (unsigned: the bridge never verifies)."""
    claims = json.dumps({"id": subject, "exp": int(exp)}).encode()
    payload = base64.urlsafe_b64encode(claims).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{payload}.c2ln"


@dataclass
class SocketServer:
    sio: socketio.AsyncServer
    url: str
    connect_tokens: list[str] = field(default_factory=list)
    join_tokens: list[str] = field(default_factory=list)
    sids: list[str] = field(default_factory=list)


@pytest.fixture
async def server() -> AsyncIterator[SocketServer]:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application()
    sio.attach(app, socketio_path="/ws/socket.io")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state = SocketServer(sio, f"http://127.0.0.1:{port}")

    # Like Open WebUI: a connection is accepted whatever the token says.
    async def connect(sid: str, environ: Any, auth: Any) -> None:
        state.connect_tokens.append(str((auth or {}).get("token")))
        state.sids.append(sid)

    async def user_join(sid: str, data: Any) -> None:
        state.join_tokens.append(str(data["auth"]["token"]))

    sio.on("connect", connect)
    sio.on("user-join", user_join)

    yield state
    await runner.cleanup()


class Tokens:
    """A token source that renews by issuing a new JWT valid for ``lifetime`` s."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self.token = make_jwt(time.time() + lifetime, subject="t0")
        self.renewals = 0

    @property
    def can_renew_jwt(self) -> bool:
        return True

    def current_jwt(self) -> str | None:
        return self.token

    async def renew_jwt(self, stale: str | None = None) -> str:
        self.renewals += 1
        self.token = make_jwt(time.time() + self.lifetime, subject=f"t{self.renewals}")
        return self.token


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def test_a_reconnect_after_expiry_authenticates_with_a_renewed_token(
    server: SocketServer,
) -> None:
    tokens = Tokens(lifetime=3.0)
    first = tokens.token
    live = LiveEvents(server.url, tokens)
    await live.start()
    try:
        await until(lambda: len(server.join_tokens) == 1)
        assert server.connect_tokens == [first] and server.join_tokens == [first]
        assert live.connected and tokens.renewals == 0

        await asyncio.sleep(1.5)  # the token is now within the renewal margin
        await server.sio.disconnect(server.sids[-1])  # like 0.12.x dropping an expired socket
        await until(lambda: len(server.join_tokens) == 2)

        assert tokens.renewals == 1
        renewed = tokens.token
        assert renewed != first
        assert server.connect_tokens == [first, renewed]
        assert server.join_tokens == [first, renewed]  # 0.6.x user-join: current token
        await until(lambda: live.connected)
    finally:
        await live.close()


async def test_a_pasted_jwt_that_expired_is_logged_once_with_the_fix(
    server: SocketServer, caplog: pytest.LogCaptureFixture
) -> None:
    token = make_jwt(time.time() - 10)
    client = OpenWebUIClient(
        "http://owui.test",
        Credentials(token=token),
        http=httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500))),
    )
    live = LiveEvents(server.url, client)
    caplog.set_level(logging.WARNING, logger="bridge.openwebui.live")
    await live.start()
    try:
        await until(lambda: len(server.join_tokens) == 1)
        await server.sio.disconnect(server.sids[-1])
        await until(lambda: len(server.connect_tokens) == 2)

        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        message = errors[0].getMessage()
        assert "expired" in message
        assert "OPENWEBUI_EMAIL" in message and "OPENWEBUI_PASSWORD" in message
        assert all(token not in r.getMessage() for r in caplog.records)
    finally:
        await live.close()
        await client.aclose()


async def test_close_is_not_reported_as_a_lost_connection(
    server: SocketServer, caplog: pytest.LogCaptureFixture
) -> None:
    live = LiveEvents(server.url, Tokens(lifetime=3600))
    caplog.set_level(logging.INFO, logger="bridge.openwebui.live")
    await live.start()
    await live.close()
    assert not live.connected
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
