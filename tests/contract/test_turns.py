"""The core against real Open WebUI servers (both versions): what the chat holds,
what the thread shows, what the database keeps."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from bridge import tree
from bridge.events import ThreadKey
from bridge.store import TurnStatus
from storage import open_store
from tests.contract.bridge_fixtures import (
    BridgeFactory,
    ask,
    fetch_chat,
    history_of,
)
from tests.harness.model_server import TITLE, expected_reply
from tests.harness.openwebui import RunningOpenWebUI


async def wait_for_title(server: RunningOpenWebUI, chat_id: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    title = ""
    while time.monotonic() < deadline:
        title = fetch_chat(server, chat_id)["title"]
        if title == TITLE:
            break
        await asyncio.sleep(0.5)
    return title


async def test_three_turns_make_one_linear_chat(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    questions = ["first question", "second question", "third question"]
    async with make_bridge() as runtime:
        results = [await ask(runtime, q, "three-turns") for q in questions]

    chat_ids = {result.chat_id for _, result in results}
    assert len(chat_ids) == 1
    chat_id = chat_ids.pop()
    assert chat_id is not None
    for (reply, result), question in zip(results, questions, strict=True):
        assert result.status is TurnStatus.DONE
        assert reply.failure is None
        assert reply.final == expected_reply(question)
        assert result.tree_problems == []

    history = history_of(fetch_chat(openwebui, chat_id))
    chain = tree.branch(history, history["currentId"])
    assert len(history["messages"]) == 6
    assert [m["role"] for m in chain] == ["user", "assistant"] * 3
    assert [m["content"] for m in chain[::2]] == questions
    assert [tree.message_text(m) for m in chain[1::2]] == [expected_reply(q) for q in questions]
    assert all(m["done"] is True for m in chain[1::2])
    assert history["currentId"] == chain[-1]["id"]
    assert tree.problems(history) == []
    assert await wait_for_title(openwebui, chat_id) == TITLE


@pytest.mark.parametrize("follow", ["events", "polling"])
async def test_long_answer_streams_in_increments(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory, follow: str
) -> None:
    question = "tell me a long story [[words=80]] [[delay=0.1]]"
    async with make_bridge(follow) as runtime:
        assert runtime.bridge.follow_mode == follow
        reply, result = await ask(runtime, question, f"long-{follow}")

    assert result.status is TurnStatus.DONE
    assert reply.final == expected_reply(question)
    assert result.chat_id is not None
    stored = history_of(fetch_chat(openwebui, result.chat_id))["messages"]
    answer = next(m for m in stored.values() if m["role"] == "assistant")
    assert tree.message_text(answer) == reply.final
    # Every intermediate text is a beginning of the final one, and it grew in steps.
    assert all(reply.final.startswith(text) for text in reply.updates)
    # 0.6.x stores the answer only at its end, so polling there sees one step.
    if follow == "events" or not openwebui.version.startswith("0.6."):
        assert len(reply.updates) >= 3, reply.updates


async def test_restart_continues_the_same_chat(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    async with make_bridge() as runtime:
        _, first = await ask(runtime, "before restart", "restart")
    async with make_bridge() as runtime:
        _reply, second = await ask(runtime, "after restart", "restart")

    assert second.status is TurnStatus.DONE
    assert first.chat_id is not None and second.chat_id == first.chat_id
    history = history_of(fetch_chat(openwebui, first.chat_id))
    chain = tree.branch(history, history["currentId"])
    assert [m["content"] for m in chain[::2]] == ["before restart", "after restart"]
    assert tree.problems(history) == []


def add_turn_as_other_client(server: RunningOpenWebUI, chat_id: str) -> tuple[str, str]:
    """What the web UI does when someone continues the chat: write the whole history
    with a question and a finished answer under the current message."""
    chat = fetch_chat(server, chat_id)
    history = history_of(chat)
    user = tree.user_message(tree.new_id(), history["currentId"], "admin's question", "fake-model")
    answer = tree.assistant_placeholder(tree.new_id(), user["id"], "fake-model")
    history = tree.add_turn(history, user, answer)
    history = tree.with_message(history, answer["id"], content="admin's answer", done=True)
    response = httpx.post(
        f"{server.url}/api/v1/chats/{chat_id}",
        json={"chat": tree.history_fields(history)},
        headers=server.headers(),
        timeout=30,
    )
    response.raise_for_status()
    return user["id"], answer["id"]


async def test_follow_up_chains_under_own_answer_after_other_client_wrote(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    async with make_bridge() as runtime:
        _, first = await ask(runtime, "bridge question one", "shared")
        assert first.chat_id is not None
        own_answer = history_of(fetch_chat(openwebui, first.chat_id))["currentId"]
        other_user, other_answer = add_turn_as_other_client(openwebui, first.chat_id)
        reply, second = await ask(runtime, "bridge question two", "shared")

    assert second.status is TurnStatus.DONE
    assert reply.final == expected_reply("bridge question two")
    history = history_of(fetch_chat(openwebui, first.chat_id))
    messages = history["messages"]
    assert tree.problems(history) == []
    assert messages[other_user]["content"] == "admin's question"
    assert messages[other_answer]["content"] == "admin's answer"
    bridge_questions = [
        m
        for m in messages.values()
        if m["role"] == "user" and m["content"] == "bridge question two"
    ]
    assert len(bridge_questions) == 1
    assert bridge_questions[0]["parentId"] == own_answer
    assert set(messages[own_answer]["childrenIds"]) == {other_user, bridge_questions[0]["id"]}


async def test_database_keeps_the_mapping_and_turns(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory, tmp_path: Path
) -> None:
    async with make_bridge() as runtime:
        _, result = await ask(runtime, "remember me", "db-thread")
    store = await open_store(tmp_path / "bridge.db")
    try:
        conversation = await store.get_conversation(ThreadKey("test", "w", "c", "db-thread"))
        assert conversation is not None and conversation.chat_id == result.chat_id
        turns = await store.turns(conversation.id)
        assert [t.status for t in turns] == [TurnStatus.DONE]
        assert conversation.last_answer_id == turns[0].assistant_message_id
        chat = fetch_chat(openwebui, result.chat_id or "")
        assert history_of(chat)["currentId"] == turns[0].assistant_message_id
    finally:
        await store.close()
