"""Build a real bridge (core + Open WebUI client + SQLite) against a harness server,
with a reply handle that records what a thread would show."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from adapters.runtime import Runtime, open_runtime
from bridge.config import Settings, load_settings
from bridge.core import TurnResult
from bridge.events import PlatformEvent, ThreadKey
from bridge.reply import Capabilities
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

    async def start(self) -> None:
        self.started = True

    async def update(self, text: str) -> None:
        if self.first_text_at is None:
            self.first_text_at = time.monotonic()
        self.updates.append(text)

    async def finish(self, text: str) -> None:
        assert self.final is None and self.failure is None, "reply ended twice"
        self.final = text

    async def fail(self, message: str) -> None:
        assert self.final is None and self.failure is None, "reply ended twice"
        self.failure = message


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


def event(text: str, thread: str, *, model: str | None = None, author: str = "") -> PlatformEvent:
    message_id = str(uuid.uuid4())
    return PlatformEvent(
        event_id=message_id,
        thread=ThreadKey("test", "w", "c", thread),
        message_id=message_id,
        author_id="u1",
        author_name=author,
        text=text,
        model=model,
    )


async def ask(
    runtime: Runtime, text: str, thread: str, **kwargs: Any
) -> tuple[RecordingReply, TurnResult]:
    reply = RecordingReply()
    task = await runtime.bridge.submit(event(text, thread, **kwargs), reply, FAST)
    assert task is not None
    result = await task
    assert result is not None
    return reply, result


def fetch_chat(server: RunningOpenWebUI, chat_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{server.url}/api/v1/chats/{chat_id}", headers=server.headers(), timeout=30
    )
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


def history_of(chat: dict[str, Any]) -> dict[str, Any]:
    history: dict[str, Any] = chat["chat"]["history"]
    return history
