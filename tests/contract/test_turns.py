"""The core against real Open WebUI servers (both versions): what the chat holds,
what the thread shows, what the database keeps."""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from bridge.display import visible_text
from bridge.events import ThreadKey
from bridge.store import TurnStatus
from storage import open_store
from tests import treecheck
from tests.contract.bridge_fixtures import (
    BridgeFactory,
    ask,
    fetch_chat,
    history_of,
    write_chat,
)
from tests.harness.model_server import (
    TITLE,
    RemoteModelServer,
    ThreadedModelServer,
    expected_reasoning,
    expected_reply,
)
from tests.harness.openwebui import RunningOpenWebUI

pytestmark = pytest.mark.every_release


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
    assert treecheck.problems(history) == []
    chain = treecheck.branch(history)
    assert len(history["messages"]) == 6
    assert [m["role"] for m in chain] == ["user", "assistant"] * 3
    assert [m["content"] for m in chain[::2]] == questions
    assert [treecheck.answer_text(m) for m in chain[1::2]] == [expected_reply(q) for q in questions]
    assert all(m["done"] is True for m in chain[1::2])
    assert history["currentId"] == chain[-1]["id"]
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
    assert treecheck.answer_text(answer) == reply.final
    # Every intermediate text is a beginning of the final one, and it grew in steps.
    assert all(reply.final.startswith(text) for text in reply.updates)
    # Before 0.11.1 the stored chat holds the answer only at its end, so polling
    # there sees one step.
    if follow == "events" or openwebui.release >= (0, 11, 1):
        assert len(reply.updates) >= 3, reply.updates


@pytest.mark.parametrize("follow", ["events", "polling"])
async def test_an_empty_answer_ends_as_one(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory, follow: str
) -> None:
    question = "say nothing [[chars=0]]"
    async with make_bridge(follow) as runtime:
        reply, result = await ask(runtime, question, f"empty-{follow}")
    # Done as soon as the model is, not failed by the answer timeout.
    assert result.status is TurnStatus.DONE, reply.failure
    assert reply.failure is None and reply.final is not None
    assert result.chat_id is not None
    history = history_of(fetch_chat(openwebui, result.chat_id))
    assert treecheck.problems(history) == []


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
    assert treecheck.problems(history) == []
    chain = treecheck.branch(history)
    assert [m["content"] for m in chain[::2]] == ["before restart", "after restart"]


def add_turn_as_other_client(server: RunningOpenWebUI, chat_id: str) -> tuple[str, str]:
    """What the web UI does when someone continues the chat: write the whole history
    with a question and a finished answer under the current message. Written by
    hand, not with bridge.openwebui.tree: the other client is not the code under test."""
    history = history_of(fetch_chat(server, chat_id))
    parent_id = history["currentId"]
    user_id, answer_id = str(uuid.uuid4()), str(uuid.uuid4())
    now = int(time.time())
    messages = history["messages"]
    messages[parent_id]["childrenIds"] = [*messages[parent_id]["childrenIds"], user_id]
    messages[user_id] = {
        "id": user_id,
        "parentId": parent_id,
        "childrenIds": [answer_id],
        "role": "user",
        "content": "admin's question",
        "models": ["fake-model"],
        "timestamp": now,
    }
    messages[answer_id] = {
        "id": answer_id,
        "parentId": user_id,
        "childrenIds": [],
        "role": "assistant",
        "content": "admin's answer",
        "model": "fake-model",
        "done": True,
        "timestamp": now,
    }
    history["currentId"] = answer_id
    write_chat(server, chat_id, history, treecheck.branch(history))
    return user_id, answer_id


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
    assert treecheck.problems(history) == []
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


def _text(content: Any) -> str:
    # OpenAI messages may carry a list of parts.
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


async def test_third_question_reaches_the_model_after_the_first_two_turns(
    openwebui: RunningOpenWebUI,
    make_bridge: BridgeFactory,
    model_server: ThreadedModelServer | RemoteModelServer,
) -> None:
    # A tag of our own: other tests (and other runs) share the model server.
    tag = uuid.uuid4().hex[:8]
    questions = [f"context one {tag}", f"context two {tag}", f"context three {tag}"]
    async with make_bridge() as runtime:
        for question in questions:
            _, result = await ask(runtime, question, f"context-{tag}")
            assert result.status is TurnStatus.DONE

    def last_user(messages: list[dict[str, Any]]) -> str:
        return next(_text(m["content"]) for m in reversed(messages) if m["role"] == "user")

    sent = [m for m in model_server.chat_requests() if tag in last_user(m)]
    assert [last_user(m) for m in sent] == questions  # each question reached it once, in order
    conversation = [(m["role"], _text(m["content"])) for m in sent[2] if m["role"] != "system"]
    assert conversation == [
        ("user", questions[0]),
        ("assistant", expected_reply(questions[0])),
        ("user", questions[1]),
        ("assistant", expected_reply(questions[1])),
        ("user", questions[2]),
    ]


@pytest.mark.parametrize("form", ["[[think=2]]", "[[think=2]] [[think_tags]]"])
async def test_reasoning_is_kept_in_the_chat_and_folds_for_display(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory, form: str
) -> None:
    question = f"think it over {form}"
    async with make_bridge() as runtime:
        reply, result = await ask(runtime, question, f"think-{uuid.uuid4().hex[:8]}")

    assert result.status is TurnStatus.DONE
    assert result.chat_id is not None
    history = history_of(fetch_chat(openwebui, result.chat_id))
    assert treecheck.problems(history) == []
    answer = treecheck.branch(history)[-1]
    content = treecheck.answer_text(answer)
    thoughts = expected_reasoning(question)
    assert thoughts is not None
    block = None
    if openwebui.release < (0, 10):
        # Before 0.10 the reasoning is folded into content as a <details> block.
        block = re.match(r'<details type="reasoning" done="true" duration="(\d+)">', content)
        assert block is not None, content
        assert 1 <= int(block.group(1)) <= 3  # Open WebUI rounds the seconds it measured
        # 0.6.41 on escapes the block's text as HTML (its web UI unescapes it).
        assert f"> {thoughts}" in html.unescape(content)
    else:
        # From 0.10 it is kept apart, as an output item.
        reasoning = [i for i in answer.get("output") or [] if i.get("type") == "reasoning"]
        assert thoughts in json.dumps(reasoning, ensure_ascii=False).replace('\\"', '"'), reasoning
        assert content == expected_reply(question)
    assert visible_text(content, "hide") == expected_reply(question)
    # What the thread showed, while streaming and at the end: never the raw block; the
    # reasoning folded into content (before 0.10) as one line saying how long it took.
    if block is not None:
        seconds = int(block.group(1))
        plural = "" if seconds == 1 else "s"
        said = f"_Thought for {seconds} second{plural}_\n\n"
    else:
        said = ""
    assert reply.final == said + expected_reply(question)
    assert not any("<details" in text for text in reply.updates)
