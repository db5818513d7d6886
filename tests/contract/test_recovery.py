"""A restart in the middle of a thread's work: the next run answers what was left
(cut-off answers completed in the messages they already occupy, queued questions
in order), and the thread's next question chains under the last answer."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid

import pytest

from bridge.events import ThreadKey
from bridge.store import NewTurn, TurnStatus
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
    write_chat,
)
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI

pytestmark = pytest.mark.every_release


def statuses(runtime_db: str) -> list[str]:
    db = sqlite3.connect(runtime_db)
    try:
        return [row[0] for row in db.execute("select status from turns order by id")]
    finally:
        db.close()


async def test_answer_cut_off_by_a_restart_is_completed_in_place(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    question = "slow answer [[words=60]] [[delay=0.1]]"
    asked = event(question, "crash")
    async with make_bridge() as runtime:
        first = RecordingReply()
        pending = await submit(runtime, asked, first)
        while not first.updates:  # the answer is under way…
            await asyncio.sleep(0.05)
        await runtime.bridge.drain(0)  # …when the process dies
        assert not pending.done()
    assert first.final is None and first.failure is None

    async with make_bridge() as runtime:
        platform = platform_of(runtime)
        assert await runtime.bridge.resume("test") == 1
        while not runtime.bridge.idle:
            await asyncio.sleep(0.05)
        reply = platform.replies[asked.message_id]
        assert reply.final == expected_reply(question)
        # The new attempt was handed the message the first one occupied: edited in place.
        assert platform.given_ids[asked.message_id] == (f"msg-{asked.message_id}",)
        _, follow_up = await ask(runtime, "after the crash", "crash")
        assert await runtime.bridge.resume("test") == 0  # nothing left
        assert statuses(str(runtime.settings.bridge_database)) == ["done", "done"]

    assert follow_up.chat_id is not None
    history = history_of(fetch_chat(openwebui, follow_up.chat_id))
    assert [m["content"] for m in treecheck.branch(history)] == [
        question,
        expected_reply(question),
        "after the crash",
        expected_reply("after the crash"),
    ]
    assert treecheck.problems(history) == []


async def test_questions_queued_behind_an_answer_survive_a_restart(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    q1, q2 = "first [[words=60]] [[delay=0.1]]", "second"
    e1, e2 = event(q1, "queued", order="1"), event(q2, "queued", order="2")
    async with make_bridge() as runtime:
        first = RecordingReply()
        await submit(runtime, e1, first)
        await submit(runtime, e2)
        while not first.updates:
            await asyncio.sleep(0.05)
        await runtime.bridge.drain(0)
        assert statuses(str(runtime.settings.bridge_database)) == ["running", "queued"]

    async with make_bridge() as runtime:
        platform = platform_of(runtime)
        await runtime.bridge.resume("test")
        while not runtime.bridge.idle:
            await asyncio.sleep(0.05)
        assert platform.replies[e1.message_id].final == expected_reply(q1)
        assert platform.replies[e2.message_id].final == expected_reply(q2)
        # A delivery of the queued question again (a platform retry) is still a duplicate.
        assert await runtime.bridge.submit(e2) is None
        db = str(runtime.settings.bridge_database)
        (chat_id,) = sqlite3.connect(db).execute("select chat_id from conversations").fetchone()

    history = history_of(fetch_chat(openwebui, chat_id))
    assert [m["content"] for m in treecheck.branch(history)] == [
        q1,
        expected_reply(q1),
        q2,
        expected_reply(q2),
    ]
    assert treecheck.problems(history) == []


async def test_turn_that_never_reached_open_webui_is_run_after_a_restart(
    make_bridge: BridgeFactory,
) -> None:
    key = ThreadKey("test", "w", "c", "never-sent")
    asked = event("never sent", "never-sent")
    async with make_bridge() as runtime:
        turn = await runtime.store.enqueue_turn(
            NewTurn(key, "ev1", asked.message_id, "", asked.to_json(), "fake-model", "u1", "a1")
        )
        assert turn is not None
        await runtime.store.mark_running(turn.id)  # the process died before the request

    async with make_bridge() as runtime:
        platform = platform_of(runtime)
        await runtime.bridge.resume("test")
        while not runtime.bridge.idle:
            await asyncio.sleep(0.05)
        assert platform.replies[asked.message_id].final == expected_reply("never sent")
        [done] = await runtime.store.turns(turn.conversation_id)
        assert done.status == TurnStatus.DONE


async def test_answer_open_webui_lost_before_its_first_word_is_answered_in_place(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    """The question and its empty answer are in the chat but no task runs for it (Open
    WebUI restarted before the first word): after the bridge restarts, the same
    answer message gets its answer, under the same question, once."""
    thread = f"lost-{uuid.uuid4().hex[:8]}"
    async with make_bridge() as runtime:
        _, first = await ask(runtime, "before the loss", thread)
        assert first.chat_id is not None
        asked = event("lost before a word", thread)
        question_id, answer_id = str(uuid.uuid4()), str(uuid.uuid4())
        turn = await runtime.store.enqueue_turn(
            NewTurn(
                asked.thread,
                asked.event_id,
                asked.message_id,
                "",
                asked.to_json(),
                "fake-model",
                question_id,
                answer_id,
            )
        )
        assert turn is not None
        await runtime.store.mark_running(turn.id)
        # What the server holds after inserting the turn and losing its task.
        chat = fetch_chat(openwebui, first.chat_id)["chat"]
        history = chat["history"]
        leaf = history["currentId"]
        now = int(time.time())
        history["messages"][leaf]["childrenIds"].append(question_id)
        history["messages"][question_id] = {
            "id": question_id, "parentId": leaf, "childrenIds": [answer_id], "role": "user",
            "content": "lost before a word", "models": ["fake-model"], "timestamp": now,
        }  # fmt: skip
        history["messages"][answer_id] = {
            "id": answer_id, "parentId": question_id, "childrenIds": [], "role": "assistant",
            "content": "", "model": "fake-model", "done": False, "timestamp": now,
        }  # fmt: skip
        history["currentId"] = answer_id
        messages = [*chat.get("messages", []), history["messages"][question_id]]
        write_chat(openwebui, first.chat_id, history, messages)

    async with make_bridge() as runtime:
        platform = platform_of(runtime)
        assert await runtime.bridge.resume("test") == 1
        while not runtime.bridge.idle:
            await asyncio.sleep(0.05)
        reply = platform.replies[asked.message_id]
        assert reply.failure is None
        assert reply.final == expected_reply("lost before a word")

    history = history_of(fetch_chat(openwebui, first.chat_id))
    assert treecheck.problems(history) == []
    chain = treecheck.branch(history)
    assert [m["content"] for m in chain[::2]] == ["before the loss", "lost before a word"]
    assert [m["id"] for m in chain[2:]] == [question_id, answer_id]
    assert treecheck.answer_text(chain[-1]) == expected_reply("lost before a word")
    assert len(history["messages"]) == 4
