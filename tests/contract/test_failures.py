"""Failures end in one short message at the reply handle, in bounded time, and no
turn is recorded as done."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bridge.errors import AnswerFailed, AnswerTimedOut, ModelUnknown, OpenWebUIUnavailable
from bridge.events import ThreadKey
from bridge.intake import Bridge
from bridge.openwebui.client import Credentials, OpenWebUIClient
from bridge.openwebui.flows import flow_for
from bridge.options import CoreOptions
from bridge.store import Store, TurnStatus
from storage import open_store
from tests import treecheck
from tests.contract.bridge_fixtures import (
    BridgeFactory,
    RecordingPlatform,
    RecordingReply,
    ask,
    event,
    fetch_chat,
    history_of,
)
from tests.harness.openwebui import RunningOpenWebUI, free_port


async def assert_failed_turns_only(store: Store, thread: str) -> None:
    conversation = await store.get_conversation(ThreadKey("test", "w", "c", thread))
    assert conversation is not None
    statuses = [t.status for t in await store.turns(conversation.id)]
    assert statuses == [TurnStatus.FAILED]


async def assert_chat_still_sound(server: RunningOpenWebUI, store: Store, thread: str) -> None:
    """A failed turn leaves the thread's chat (if one was made) one the web UI
    renders; its answer may be unfinished."""
    conversation = await store.get_conversation(ThreadKey("test", "w", "c", thread))
    if conversation is None or conversation.chat_id is None:
        return
    history = history_of(fetch_chat(server, conversation.chat_id))
    assert treecheck.problems(history, require_done=False) == []


async def test_model_error_is_reported(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    async with make_bridge() as runtime:
        started = time.monotonic()
        reply, result = await ask(runtime, "please fail [[fail=500]]", "fail-500")
        elapsed = time.monotonic() - started
        await assert_failed_turns_only(runtime.store, "fail-500")
        await assert_chat_still_sound(openwebui, runtime.store, "fail-500")
    assert isinstance(result.error, AnswerFailed), result.error
    assert reply.failure == AnswerFailed.user_message
    assert reply.final is None
    assert elapsed < 30


async def test_unknown_model_is_reported(make_bridge: BridgeFactory) -> None:
    async with make_bridge() as runtime:
        reply, result = await ask(runtime, "hello", "unknown-model", model="no-such-model")
        await assert_failed_turns_only(runtime.store, "unknown-model")
    assert isinstance(result.error, ModelUnknown), result.error
    assert reply.failure == ModelUnknown.user_message


async def test_answer_that_never_finishes_times_out(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    async with make_bridge(bridge_answer_timeout=6) as runtime:
        started = time.monotonic()
        reply, result = await ask(runtime, "stall please [[stall]]", "hang")
        elapsed = time.monotonic() - started
        await assert_failed_turns_only(runtime.store, "hang")
        await assert_chat_still_sound(openwebui, runtime.store, "hang")
    assert isinstance(result.error, AnswerTimedOut), result.error
    assert reply.failure == AnswerTimedOut.user_message
    assert elapsed < 25
    # The stalled answer was stopped in Open WebUI, not left running.
    assert result.chat_id is not None
    client = OpenWebUIClient(openwebui.url, Credentials(token=openwebui.jwt))
    try:
        await client.connect()
        deadline = time.monotonic() + 15
        while await client.running_tasks(result.chat_id) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert await client.running_tasks(result.chat_id) == []
    finally:
        await client.aclose()


async def test_open_webui_gone_is_reported(openwebui: RunningOpenWebUI, tmp_path: Path) -> None:
    # Connected while the server was up, then it went away (here: a port nobody listens on).
    client = OpenWebUIClient(
        openwebui.url, Credentials(token=openwebui.jwt), retries=2, backoff=0.1
    )
    await client.connect()
    client.base_url = f"http://127.0.0.1:{free_port()}"
    store = await open_store(f"{tmp_path}/gone.db")
    try:
        bridge = Bridge(client, store, flow_for(client), CoreOptions(default_model="fake-model"))
        platform = RecordingPlatform()
        bridge.register(platform)
        question = event("anyone there?", "gone")
        reply = platform.replies[question.message_id] = RecordingReply()
        started = time.monotonic()
        pending = await bridge.submit(question)
        assert pending is not None
        result = await pending
        assert time.monotonic() - started < 30
        assert isinstance(result.error, OpenWebUIUnavailable), result.error
        assert reply.failure == OpenWebUIUnavailable.user_message
        await assert_failed_turns_only(store, "gone")
    finally:
        await store.close()
        await client.aclose()
