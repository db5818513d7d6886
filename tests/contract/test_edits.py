"""Edited and deleted questions through the real core and real Open WebUI servers:
an answered question edited becomes what the web UI's edit makes (a sibling
question with its own answer, "2/2" on the question, the thread going on under
the new branch); a queued one is answered as edited; a deleted queued one is not
answered."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from adapters.runtime import Runtime
from bridge.results import TurnResult
from bridge.store import TurnStatus
from tests import treecheck
from tests.contract.bridge_fixtures import (
    BridgeFactory,
    RecordingReply,
    ask,
    event,
    fetch_chat,
    history_of,
    platform_of,
    submit,
)
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI

pytestmark = [pytest.mark.timeout(120), pytest.mark.every_release]


async def wait_for_text(reply: RecordingReply, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not reply.updates and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def test_an_answered_question_edited_becomes_a_sibling_with_its_own_answer(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    async with make_bridge() as runtime:
        first = event("the first question", "t-edit-answered")
        reply = RecordingReply()
        answered = await (await submit(runtime, first, reply))
        assert answered.status is TurnStatus.DONE and answered.chat_id
        chat_id = answered.chat_id
        before = history_of(fetch_chat(openwebui, chat_id))
        [old_question] = [m for m in before["messages"].values() if m["role"] == "user"]

        edited = replace(first, event_id="edit-1", text="the question as meant")
        pending = await runtime.bridge.edit(edited)
        assert pending is not None
        result = await pending
        assert result.status is TurnStatus.DONE
        # The platform: the new answer in the old answer's message, no second answer.
        [edit_turn_id] = [k for k in platform_of(runtime).replies if k != first.message_id]
        assert platform_of(runtime).given_ids[edit_turn_id] == (reply.message_id,)
        new_reply = platform_of(runtime).replies[edit_turn_id]
        assert new_reply.final == expected_reply("the question as meant")

        history = history_of(fetch_chat(openwebui, chat_id))
        assert treecheck.problems(history) == []
        messages = history["messages"]
        questions = [m for m in messages.values() if m["role"] == "user"]
        assert sorted(m["content"] for m in questions) == [
            "the first question",
            "the question as meant",
        ]
        [new_question] = [m for m in questions if m["content"] == "the question as meant"]
        # Siblings: the same parent (none: the first question), as the web UI's edit
        # makes them; it shows "2/2" on the question.
        assert new_question.get("parentId") == old_question.get("parentId") is None
        siblings = [m["id"] for m in messages.values() if m.get("parentId") is None]
        assert sorted(siblings) == sorted([old_question["id"], new_question["id"]])
        [new_answer_id] = new_question["childrenIds"]
        assert history["currentId"] == new_answer_id
        assert treecheck.answer_text(messages[new_answer_id]) == new_reply.final
        assert messages[old_question["id"]]["childrenIds"] == old_question["childrenIds"]

        # A later question chains under the new branch.
        _, follow_up = await ask(runtime, "and then?", "t-edit-answered")
        assert follow_up.status is TurnStatus.DONE
        path = treecheck.branch(history_of(fetch_chat(openwebui, chat_id)))
        assert [m["content"] for m in path if m["role"] == "user"] == [
            "the question as meant",
            "and then?",
        ]


async def test_an_edit_of_a_follow_up_hangs_beside_it_under_the_same_answer(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    async with make_bridge() as runtime:
        _, one = await ask(runtime, "question one", "t-edit-second")
        second = event("question two", "t-edit-second")
        assert (await (await submit(runtime, second))).status is TurnStatus.DONE
        pending = await runtime.bridge.edit(replace(second, event_id="edit-2", text="two, fixed"))
        assert pending is not None and (await pending).status is TurnStatus.DONE
        assert one.chat_id
        history = history_of(fetch_chat(openwebui, one.chat_id))
        assert treecheck.problems(history) == []
        messages = history["messages"]
        by_text = {m["content"]: m for m in messages.values() if m["role"] == "user"}
        parent = by_text["question two"]["parentId"]
        assert by_text["two, fixed"]["parentId"] == parent  # siblings under answer one
        assert messages[parent]["childrenIds"] == [
            by_text["question two"]["id"],
            by_text["two, fixed"]["id"],
        ]
        path = treecheck.branch(history)
        assert [m["content"] for m in path if m["role"] == "user"] == [
            "question one",
            "two, fixed",
        ]


async def test_a_question_edited_while_queued_is_answered_as_edited(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    async with make_bridge() as runtime:
        await _queued_behind_a_slow_answer(runtime, "t-edit-queued")
        waiting = event("the old wording", "t-edit-queued", order="2")
        pending = await submit(runtime, waiting)
        assert await runtime.bridge.edit(replace(waiting, event_id="e-q", text="the new wording"))
        result = await pending
        assert result.status is TurnStatus.DONE and result.chat_id
        reply = platform_of(runtime).replies[waiting.message_id]
        assert reply.final == expected_reply("the new wording")
        chat = fetch_chat(openwebui, result.chat_id)
        contents = [m.get("content") for m in history_of(chat)["messages"].values()]
        assert "the old wording" not in contents and "the new wording" in contents


async def test_a_question_deleted_while_queued_is_not_answered(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    async with make_bridge() as runtime:
        first = await _queued_behind_a_slow_answer(runtime, "t-delete-queued")
        waiting = event("never mind this one", "t-delete-queued", order="2")
        await submit(runtime, waiting)
        assert await runtime.bridge.retract(waiting.thread, waiting.message_id)
        result = await first
        while not runtime.bridge.idle:
            await asyncio.sleep(0.05)
        assert result.chat_id
        chat = fetch_chat(openwebui, result.chat_id)
        contents = [m.get("content") for m in history_of(chat)["messages"].values()]
        assert "never mind this one" not in contents
        assert waiting.message_id not in platform_of(runtime).replies  # nothing in the thread


async def _queued_behind_a_slow_answer(runtime: Runtime, thread: str) -> asyncio.Future[TurnResult]:
    """A first question whose answer is being written (slowly), so the next one waits."""
    reply = RecordingReply()
    slow = event("a slow one [[words=40]] [[delay=0.05]]", thread, order="1")
    pending = await submit(runtime, slow, reply)
    await wait_for_text(reply)
    return pending


async def test_a_question_edited_while_answered_is_stopped_and_answered_as_edited(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    async with make_bridge() as runtime:
        reply = RecordingReply()
        asked = event("the old wording [[words=200]] [[delay=0.05]]", "t-edit-running")
        first = await submit(runtime, asked, reply)
        await wait_for_text(reply)
        pending = await runtime.bridge.edit(replace(asked, event_id="e-r", text="the new one"))
        assert pending is not None
        assert (await first).status is TurnStatus.STOPPED
        result = await pending
        assert result.status is TurnStatus.DONE and result.chat_id
        [edit_turn_id] = [k for k in platform_of(runtime).replies if k != asked.message_id]
        assert platform_of(runtime).given_ids[edit_turn_id] == (reply.message_id,)  # in place
        assert platform_of(runtime).replies[edit_turn_id].final == expected_reply("the new one")
        assert await runtime.client.running_tasks(result.chat_id) == []

        history = history_of(fetch_chat(openwebui, result.chat_id))
        assert treecheck.problems(history) == []
        path = treecheck.branch(history)
        assert [m["content"] for m in path if m["role"] == "user"] == ["the new one"]
        roots = [m for m in history["messages"].values() if m.get("parentId") is None]
        assert len(roots) == 2  # the stopped question and its edit, side by side
