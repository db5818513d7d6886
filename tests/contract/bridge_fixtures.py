"""Build a real bridge (core + Open WebUI client + SQLite) against a harness server,
with a reply handle that records what a thread would show."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from adapters.runtime import Runtime, open_runtime
from bridge.actions import Act, Acted, Action, Outcome
from bridge.config import Settings, load_settings
from bridge.errors import FileUnavailable
from bridge.events import FileRef, PlatformEvent, ThreadKey
from bridge.intake import Bridge
from bridge.openwebui.organise import Rater
from bridge.reply import Capabilities, OutFile, SaveMessageIds
from bridge.results import TurnResult
from tests.harness.openwebui import RunningOpenWebUI

MODEL = "fake-model"
FAST = Capabilities(max_message_length=100_000, min_update_interval=0.0)

Follow = Literal["events", "polling"]


@dataclass
class RecordingReply:
    """What a person watching the thread would have seen, with timings."""

    started: bool = False
    updates: list[str] = field(default_factory=list)
    final: str | None = None
    failure: str | None = None
    first_text_at: float | None = None
    # Like a platform message: its id is saved with the turn once text shows.
    save_ids: SaveMessageIds | None = None
    message_id: str = ""
    attached: list[list[OutFile]] = field(default_factory=list)  # each attach call

    async def start(self) -> None:
        self.started = True

    async def update(self, text: str) -> bool:
        if self.first_text_at is None:
            self.first_text_at = time.monotonic()
            if self.save_ids is not None:
                await self.save_ids([self.message_id])
        self.updates.append(text)
        return True

    async def finish(self, text: str) -> None:
        assert self.final is None and self.failure is None, "reply ended twice"
        self.final = text

    async def attach(self, files: Sequence[OutFile]) -> None:
        assert self.final is not None, "files come after the final text"
        self.attached.append(list(files))

    async def fail(self, message: str) -> None:
        assert self.final is None and self.failure is None, "reply ended twice"
        self.failure = message
        if self.first_text_at is None and self.save_ids is not None:
            await self.save_ids([self.message_id])  # the notice is the reply's message


class RecordingPlatform:
    """The "test" platform: every question's reply is a RecordingReply, found again by
    message id (so a restarted bridge's reply to a turn is ``replies[message_id]``)."""

    name = "test"
    capabilities = FAST

    def __init__(self) -> None:
        self.replies: dict[str, RecordingReply] = {}
        self.given_ids: dict[str, tuple[str, ...]] = {}  # ids each attempt was handed
        self.served: dict[str, bytes] = {}  # file id -> the bytes ``download`` gives
        self.downloads: list[str] = []  # file ids downloaded, in order

    async def download(self, file: FileRef) -> AsyncIterator[bytes]:
        self.downloads.append(file.id)
        data = self.served.get(file.id)
        if data is None:
            raise FileUnavailable("the link expired")
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    async def prepare(self, event: PlatformEvent) -> PlatformEvent:
        return event

    def reply(
        self, event: PlatformEvent, message_ids: Sequence[str], save_ids: SaveMessageIds
    ) -> RecordingReply:
        self.given_ids[event.message_id] = tuple(message_ids)
        reply = self.replies.setdefault(event.message_id, RecordingReply())
        reply.save_ids, reply.message_id = save_ids, f"msg-{event.message_id}"
        return reply


def platform_of(runtime: Runtime) -> RecordingPlatform:
    """The recording platform registered with this runtime's bridge."""
    platform = _PLATFORMS.get(runtime.bridge)
    if platform is None:
        platform = _PLATFORMS[runtime.bridge] = RecordingPlatform()
        runtime.bridge.register(platform)
    return platform


# By the bridge itself, not its id(): a new bridge may reuse a collected one's id.
_PLATFORMS: weakref.WeakKeyDictionary[Bridge, RecordingPlatform] = weakref.WeakKeyDictionary()


async def submit(
    runtime: Runtime, e: PlatformEvent, reply: RecordingReply | None = None
) -> asyncio.Future[TurnResult]:
    platform = platform_of(runtime)
    if reply is not None:
        platform.replies[e.message_id] = reply
    pending = await runtime.bridge.submit(e)
    assert pending is not None, "a new event must be queued"
    return pending


def settings_for(
    server: RunningOpenWebUI, db: Path, follow: Follow = "events", **extra: Any
) -> Settings:
    # A JWT gives live events; an API key means polling. (Signing in per test
    # would hit Open WebUI's sign-in rate limit; tests/e2e covers email+password.)
    credentials = {"openwebui_api_key": server.jwt if follow == "events" else server.api_key}
    values: dict[str, Any] = {
        "openwebui_url": server.url,
        "openwebui_model": MODEL,
        "openwebui_follow": follow,
        "openwebui_poll_interval": 0.2,
        "bridge_database": str(db),
        "bridge_answer_timeout": 60,
        # One test author asks many questions in a minute; tests/e2e covers the limit.
        "bridge_user_rate_limit": 0,
        **credentials,
    }
    return load_settings(**(values | extra))


BridgeFactory = Callable[..., AbstractAsyncContextManager[Runtime]]


def bridge_factory(server: RunningOpenWebUI, tmp_path: Path) -> BridgeFactory:
    @asynccontextmanager
    async def make(follow: Follow = "events", **extra: Any) -> AsyncIterator[Runtime]:
        async with open_runtime(
            settings_for(server, tmp_path / "bridge.db", follow, **extra)
        ) as rt:
            yield rt

    return make


def event(
    text: str, thread: str, *, model: str | None = None, author: str = "", order: str = ""
) -> PlatformEvent:
    message_id = str(uuid.uuid4())
    return PlatformEvent(
        event_id=message_id,
        thread=ThreadKey("test", "w", "c", thread),
        message_id=message_id,
        author_id="u1",
        author_name=author,
        text=text,
        model=model,
        order=order,
    )


async def ask(
    runtime: Runtime, text: str, thread: str, **kwargs: Any
) -> tuple[RecordingReply, TurnResult]:
    reply = RecordingReply()
    result = await (await submit(runtime, event(text, thread, **kwargs), reply))
    return reply, result


# -- Open WebUI as an admin sees it in the web UI, without the bridge ----------------


def admin_request(
    server: RunningOpenWebUI, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    """A request as an admin makes it in the web UI (independent of the bridge)."""
    response = httpx.request(
        method, f"{server.url}{path}", headers=server.headers(), timeout=60, **kwargs
    )
    response.raise_for_status()
    return response


async def as_admin(server: RunningOpenWebUI, method: str, path: str, **kwargs: Any) -> Any:
    """``admin_request``'s JSON, off the loop (a fake platform may be serving in it)."""
    response = await asyncio.to_thread(admin_request, server, method, path, **kwargs)
    return response.json()


def fetch_chat(server: RunningOpenWebUI, chat_id: str) -> dict[str, Any]:
    data: dict[str, Any] = admin_request(server, "GET", f"/api/v1/chats/{chat_id}").json()
    return data


def history_of(chat: dict[str, Any]) -> dict[str, Any]:
    history: dict[str, Any] = chat["chat"]["history"]
    return history


def write_chat(
    server: RunningOpenWebUI,
    chat_id: str,
    history: dict[str, Any],
    messages: list[dict[str, Any]],
) -> None:
    """Store the chat's whole history, as the web UI does after each turn."""
    body = {"chat": {"history": history, "messages": messages}}
    admin_request(server, "POST", f"/api/v1/chats/{chat_id}", json=body)


async def search_chats(server: RunningOpenWebUI, text: str) -> list[dict[str, Any]]:
    """The admin's chats the web UI's search finds for ``text``."""
    found: list[dict[str, Any]] = await as_admin(
        server, "GET", "/api/v1/chats/search", params={"text": text}
    )
    return found


async def all_chats(server: RunningOpenWebUI) -> list[dict[str, Any]]:
    """Every chat of the admin, whole (newer releases stream them as JSON lines)."""
    response = await asyncio.to_thread(admin_request, server, "GET", "/api/v1/chats/all")
    if response.headers.get("content-type", "").startswith("application/x-ndjson"):
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]
    chats: list[dict[str, Any]] = response.json()  # 0.6: one JSON list
    return chats


# -- what people do to answers, as an adapter sends it ------------------------------


async def rate(
    runtime: Runtime, message_id: str, rater: Rater, vote: int, *, removed: bool = False
) -> bool:
    """👍/👎 (``removed``: taken back) on ``message_id``, written at once (not settled).
    True when the message holds an answer."""
    act = Act.UNRATE if removed else Act.RATE
    acted = await runtime.bridge.act(Action(act, "test", message_id, rater, None, vote=vote))
    await runtime.bridge.write_ratings()
    return acted.outcome is Outcome.DONE


async def stop_answer(runtime: Runtime, message_id: str) -> bool:
    """⏹ on ``message_id``: True when it stopped the answer being written."""
    acted = await runtime.bridge.act(Action(Act.STOP, "test", message_id, SOMEONE, None))
    return acted.outcome is Outcome.DONE


async def regenerate(runtime: Runtime, message_id: str, event_id: str) -> Acted:
    """🔁 on ``message_id``."""
    return await runtime.bridge.act(
        Action(Act.REGENERATE, "test", message_id, SOMEONE, None, event_id)
    )


SOMEONE = Rater("test", "u-someone", "Someone")
