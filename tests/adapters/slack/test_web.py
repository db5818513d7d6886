"""The process's web server: liveness, readiness with cached checks, mounted routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.web import WebServer


@pytest.fixture
async def server() -> AsyncIterator[WebServer]:
    server = WebServer(check_timeout=0.2, cache_seconds=0.3)
    yield server
    await server.stop()


async def get(server: WebServer, path: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{server.port}{path}") as response,
    ):
        return response.status, await response.json()


def check(result: bool, calls: list[str], name: str, delay: float = 0.0) -> Any:
    async def run() -> bool:
        calls.append(name)
        await asyncio.sleep(delay)
        return result

    return run


async def test_healthz_answers_while_the_process_runs(server: WebServer) -> None:
    server.add_check("openwebui", check(False, [], "openwebui"))
    await server.start("127.0.0.1", 0)
    assert await get(server, "/healthz") == (200, {"ok": True})  # liveness ignores checks


async def test_readyz_passes_when_every_check_passes(server: WebServer) -> None:
    calls: list[str] = []
    server.add_check("openwebui", check(True, calls, "openwebui"))
    server.add_check("slack", check(True, calls, "slack"))
    await server.start("127.0.0.1", 0)
    assert await get(server, "/readyz") == (
        200,
        {"ready": True, "checks": {"openwebui": True, "slack": True}},
    )


@pytest.mark.parametrize(
    ("slack", "delay", "raises"),
    [(False, 0.0, False), (True, 1.0, False), (True, 0.0, True)],
    ids=["says-no", "too-slow", "raises"],
)
async def test_readyz_names_the_failed_check(
    server: WebServer, slack: bool, delay: float, raises: bool
) -> None:
    async def slack_check() -> bool:
        if raises:
            raise OSError("unreachable")
        await asyncio.sleep(delay)
        return slack

    server.add_check("openwebui", check(True, [], "openwebui"))
    server.add_check("slack", slack_check)
    await server.start("127.0.0.1", 0)
    status, body = await get(server, "/readyz")
    assert status == 503
    assert body == {
        "ready": False,
        "checks": {"openwebui": True, "slack": False},
        "failed": ["slack"],
    }


async def test_readiness_results_are_cached_briefly(server: WebServer) -> None:
    calls: list[str] = []
    server.add_check("slack", check(True, calls, "slack"))
    await server.start("127.0.0.1", 0)
    await get(server, "/readyz")
    await get(server, "/readyz")
    assert calls == ["slack"]
    await asyncio.sleep(0.35)
    await get(server, "/readyz")
    assert calls == ["slack", "slack"]


async def test_routes_mount_before_start_only(server: WebServer) -> None:
    async def events(_: web.Request) -> web.Response:
        return web.json_response({"seen": True})

    server.add_route("POST", "/slack/events", events)
    await server.start("127.0.0.1", 0)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{server.port}/slack/events") as response,
    ):
        assert (response.status, await response.json()) == (200, {"seen": True})
    with pytest.raises(RuntimeError, match="before the web server starts"):
        server.add_route("POST", "/late", events)
