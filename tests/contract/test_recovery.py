"""A restart in the middle of a thread's work: the next run answers what was left
(cut-off answers completed in the messages they already occupy, queued questions
in order), and the thread's next question chains under the last answer."""

from __future__ import annotations

import asyncio
import sqlite3

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
