"""On 0.9.0 and later the server keeps the chat's history itself: after a stopped or
failed answer, the bridge never writes the
whole history back (an admin editing the chat in the web UI at that moment keeps
their edit). The chat stays sound and the stopped answer is done."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from adapters.runtime import Runtime
from bridge.store import TurnStatus
from tests import treecheck
from tests.contract.bridge_fixtures import (
    BridgeFactory,
    RecordingReply,
    ask,
    event,
    fetch_chat,
    history_of,
    submit,
)
from tests.harness.openwebui import RunningOpenWebUI

pytestmark = [pytest.mark.timeout(120), pytest.mark.every_release, pytest.mark.since((0, 9, 0))]


def record_history_writes(runtime: Runtime) -> list[str]:
    """The paths of every ``POST /api/v1/chats/{id}`` the bridge sends with a history."""
    writes: list[str] = []
    send = runtime.client.request

    async def request(method: str, path: str, **kwargs: Any) -> Any:
        body = kwargs.get("json")
        chat = body.get("chat") if isinstance(body, dict) else None
        if method == "POST" and isinstance(chat, dict) and "history" in chat:
            writes.append(path)
        return await send(method, path, **kwargs)

    runtime.client.request = request  # type: ignore[method-assign]
    return writes


def answer_of(server: RunningOpenWebUI, chat_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The chat's history and its current answer."""
    history = history_of(fetch_chat(server, chat_id))
    return history, history["messages"][history["currentId"]]


async def stopped_turn(runtime: Runtime, text: str, thread: str, *, first_words: bool) -> str:
    """A turn stopped (⏹) after its first words, or while the model has not sent any;
    returns its chat id."""
    reply = RecordingReply()
    pending = await submit(runtime, event(text, thread), reply)
    conversation = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if first_words and reply.updates:
            break
        if not first_words:
            conversation = await runtime.store.get_conversation(event(text, thread).thread)
            if conversation and conversation.chat_id:
                if await runtime.client.running_tasks(conversation.chat_id):
                    break
        await asyncio.sleep(0.05)
    assert await runtime.bridge.stop(event(text, thread).thread)
    result = await pending
    assert result.status is TurnStatus.STOPPED
    assert result.chat_id is not None
    return result.chat_id


async def test_a_stopped_answer_is_closed_by_the_server_not_by_a_history_write(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    async with make_bridge() as runtime:
        writes = record_history_writes(runtime)
        chat_id = await stopped_turn(
            runtime, "stop me [[words=400]] [[delay=0.05]]", "hw-stop", first_words=True
        )
        history, answer = answer_of(openwebui, chat_id)
        assert answer["done"] is True
        assert answer["content"]  # what was written before the stop stays
        assert treecheck.problems(history) == []
        _, after = await ask(runtime, "after the stop", "hw-stop")
        assert after.status is TurnStatus.DONE
        assert treecheck.problems(answer_of(openwebui, chat_id)[0]) == []
        assert writes == []


async def test_a_failed_answer_keeps_the_servers_record_without_a_history_write(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    async with make_bridge() as runtime:
        writes = record_history_writes(runtime)
        await ask(runtime, "first", "hw-fail")
        reply, result = await ask(runtime, "please fail [[fail=500]]", "hw-fail")
        assert result.status is TurnStatus.FAILED and reply.failure
        assert result.chat_id is not None
        history, answer = answer_of(openwebui, result.chat_id)
        assert answer["role"] == "assistant" and (answer.get("error") or answer["done"] is True)
        assert treecheck.problems(history, require_done=False) == []
        _, after = await ask(runtime, "after the failure", "hw-fail")
        assert after.status is TurnStatus.DONE
        assert writes == []


@pytest.mark.since((0, 11, 4))  # 0.9.0 has no request that closes one message
async def test_an_answer_stopped_before_its_first_words_is_closed_one_message_only(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    async with make_bridge() as runtime:
        writes = record_history_writes(runtime)
        await ask(runtime, "first", "hw-early")
        chat_id = await stopped_turn(runtime, "wait [[hang]]", "hw-early", first_words=False)
        history, answer = answer_of(openwebui, chat_id)
        assert answer["done"] is True
        assert treecheck.problems(history) == []
        assert writes == []
