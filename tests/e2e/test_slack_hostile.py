"""Hostile requests on Slack's HTTP events endpoint, against ``owui-bridge run`` as a
process: each gets a 4xx, none leaves a traceback, a turn or a chat behind, and a
real signed question is answered afterwards."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.slack.app import SCOPES
from tests.contract.bridge_fixtures import search_chats
from tests.fakes.slack_server import BOT_USER_ID, FakeSlack
from tests.fakes.slack_signing import signed_headers
from tests.harness.bridge_process import BridgeProcess, bridge_env
from tests.harness.model_server import RemoteModelServer, ThreadedModelServer, expected_reply
from tests.harness.openwebui import RunningOpenWebUI

SECRET = "hostile-signing-secret"
CHANNEL = "C100"
MiB = 1024 * 1024

Model = ThreadedModelServer | RemoteModelServer


class HttpBridge(BridgeProcess):
    """``owui-bridge run`` in HTTP mode, on its own database in ``tmp``."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp / "bridge.log", cwd=tmp)
        self.database = tmp / "bridge.db"

    @property
    def events_url(self) -> str:
        return f"{self.url}/slack/events"


@asynccontextmanager
async def http_bridge(
    openwebui: RunningOpenWebUI, fake: FakeSlack, tmp: Path, env: dict[str, str]
) -> AsyncIterator[HttpBridge]:
    """Start the bridge against ``fake``; returns once /readyz answers; SIGTERM after."""
    async with HttpBridge(tmp) as bridge:
        await bridge.start(
            bridge_env(openwebui, bridge.database) | {"SLACK_API_URL": fake.api_url} | env
        )
        await bridge.wait_ready("/readyz", 200, timeout=30)
        yield bridge


async def post_raw(
    url: str,
    body: bytes | Any,
    *,
    secret: str | None = SECRET,
    age: int = 0,
    signed_body: bytes | None = None,
) -> int:
    """POST ``body`` as Slack would (``secret`` None: no signature headers at all)."""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        to_sign = signed_body if signed_body is not None else body
        headers = signed_headers(to_sign, secret, age=age)
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=body, headers=headers) as response,
        ):
            await response.read()
            return response.status
    except aiohttp.ClientError as exc:
        # The server may answer and close before a huge upload is sent; that is a refusal.
        return -1 if "reset" not in str(exc).lower() else 0


def mention_body(fake: FakeSlack, user: str, text: str) -> dict[str, Any]:
    _, _, mention = fake.user_says(CHANNEL, user, f"<@{BOT_USER_ID}> {text}")
    assert mention is not None
    return mention


async def test_hostile_requests_get_a_4xx_and_leave_nothing(
    openwebui: RunningOpenWebUI,
    model_server: Model,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = uuid.uuid4().hex[:8]
    async with FakeSlack() as fake:
        fake.scopes = list(SCOPES)
        fake.add_user("UALICE", "Alice")
        env = {
            "OPENWEBUI_API_KEY": openwebui.jwt,
            "SLACK_BOT_TOKEN": "xoxb-hostile",
            "SLACK_SIGNING_SECRET": SECRET,
        }
        async with http_bridge(openwebui, fake, tmp_path, env) as bridge:
            url = bridge.events_url
            marker = f"hostile{run}"

            def payload(case: str) -> bytes:
                return json.dumps(mention_body(fake, "UALICE", f"{marker} {case}")).encode()

            good = payload("signed")
            unknown = fake.event_callback(
                {"type": "foo", "user": "UALICE", "channel": CHANNEL, "text": marker}
            )

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(3):
                    yield b"x" * MiB

            huge = b'{"a": "' + b"x" * (2 * MiB) + b'"}'
            statuses = {
                "invalid-utf8": await post_raw(url, payload("utf8").replace(b"utf8", b"\xff\xfe")),
                "malformed-json": await post_raw(url, payload("json")[:-20]),
                "not-an-object": await post_raw(url, b"[" * 100_000),
                "huge": await post_raw(url, huge),
                "huge-chunked": await post_raw(url, chunks(), signed_body=b""),
                "unknown-event": await post_raw(url, json.dumps(unknown).encode()),
                "bad-signature": await post_raw(url, good, secret="not-the-secret"),
                "old-timestamp": await post_raw(url, good, age=3600),
                "no-signature": await post_raw(url, good, secret=None),
                "unsigned-invalid-utf8": await post_raw(url, b"\xff{", secret="nope"),
            }
            with capsys.disabled():
                print(
                    f"\nhostile[{openwebui.version}]: "
                    + " ".join(f"{k}={v}" for k, v in statuses.items())
                )

            # Slack's URL check still answers, and a real question is answered.
            challenge = {"type": "url_verification", "challenge": f"c-{run}", "token": "t"}
            status, text = await fake.post_event(url, challenge, SECRET)
            assert (status, json.loads(text)) == (200, {"challenge": f"c-{run}"})
            ts, _, mention = fake.user_says(CHANNEL, "UALICE", f"<@{BOT_USER_ID}> real {run}")
            assert mention is not None
            assert (await fake.post_event(url, mention, SECRET))[0] == 200
            await fake.wait_for(
                lambda: (
                    [m.text for m in fake.bot_replies(CHANNEL, ts)]
                    == [expected_reply(f"Alice: real {run}")]
                ),
                timeout=60,
                what="the real answer",
            )
            output = bridge.output()

        assert statuses == {
            "invalid-utf8": 400,
            "malformed-json": 400,
            "not-an-object": 400,
            "huge": 413,
            "huge-chunked": 413,
            "unknown-event": 404,  # Bolt: no listener for the event type
            "bad-signature": 401,
            "old-timestamp": 401,
            "no-signature": 401,
            "unsigned-invalid-utf8": 401,
        }, output[-3000:]
        assert "Traceback" not in output and "Error handling request" not in output
        assert marker not in output  # nothing unsigned or unread was logged
        with sqlite3.connect(bridge.database) as db:
            assert db.execute("select platform_message_id from turns").fetchall() == [(ts,)]
            assert db.execute("select event_id from processed_events").fetchall() == [
                (f"{CHANNEL}:{ts}",)
            ]
        recorded = await asyncio.to_thread(model_server.recorded)
        assert not any(marker in str(r.get("body")) for r in recorded)
        assert await search_chats(openwebui, marker) == []


async def test_after_sigterm_new_events_are_left_to_the_next_process(
    openwebui: RunningOpenWebUI, tmp_path: Path
) -> None:
    async with FakeSlack() as fake:
        fake.scopes = list(SCOPES)
        fake.add_user("UALICE", "Alice")
        env = {
            "OPENWEBUI_API_KEY": openwebui.jwt,
            "SLACK_BOT_TOKEN": "xoxb-shutdown",
            "SLACK_SIGNING_SECRET": SECRET,
        }
        async with http_bridge(openwebui, fake, tmp_path, env) as bridge:
            url = bridge.events_url
            slow, _, first = fake.user_says(
                CHANNEL, "UALICE", f"<@{BOT_USER_ID}> long one [[words=200]] [[delay=0.05]]"
            )
            assert first is not None
            assert (await fake.post_event(url, first, SECRET))[0] == 200
            await fake.wait_for(
                lambda: fake.bot_replies(CHANNEL, slow), timeout=60, what="the answer under way"
            )
            bridge.terminate()  # the answer under way gets its grace
            await asyncio.sleep(1.0)
            late, _, second = fake.user_says(CHANNEL, "UALICE", f"<@{BOT_USER_ID}> too late")
            assert second is not None
            status, _ = await fake.post_event(url, second, SECRET)
            # Not acknowledged: Slack delivers it again, to the process that follows.
            assert status == 503
            await bridge.wait(60)
            assert fake.bot_replies(CHANNEL, late) == []
            with sqlite3.connect(bridge.database) as db:
                taken = [row[0] for row in db.execute("select platform_message_id from turns")]
            assert taken == [slow]
