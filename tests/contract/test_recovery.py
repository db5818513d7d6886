"""A restart in the middle of an answer: the next run delivers the answer (or says
to ask again), records the turn, and the thread's next question chains under it."""

from __future__ import annotations

import asyncio

from bridge import tree
from bridge.errors import TurnInterrupted
from bridge.events import ThreadKey
from bridge.store import Turn, TurnStatus
from tests.contract.bridge_fixtures import (
    FAST,
    BridgeFactory,
    RecordingReply,
    ask,
    event,
    fetch_chat,
    history_of,
)
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI


async def test_answer_cut_off_by_a_restart_is_delivered_after_it(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    question = "slow answer [[words=60]] [[delay=0.1]]"
    first_reply = RecordingReply()
    async with make_bridge() as runtime:
        task = await runtime.bridge.submit(event(question, "crash"), first_reply, FAST)
        assert task is not None
        while not first_reply.updates:  # the answer is under way…
            await asyncio.sleep(0.05)
        task.cancel()  # …when the process dies
        await asyncio.gather(task, return_exceptions=True)
    assert first_reply.final is None and first_reply.failure is None

    recovered: list[tuple[ThreadKey, RecordingReply]] = []

    def reply_for(key: ThreadKey, turn: Turn) -> RecordingReply:
        recovered.append((key, RecordingReply()))
        return recovered[-1][1]

    async with make_bridge() as runtime:
        results = await runtime.bridge.recover("test", reply_for, FAST)
        assert [r.status for r in results] == [TurnStatus.DONE]
        [(key, reply)] = recovered
        assert key.thread == "crash"
        assert reply.final == expected_reply(question)
        _, follow_up = await ask(runtime, "after the crash", "crash")
        assert await runtime.bridge.recover("test", reply_for, FAST) == []  # nothing left

    assert follow_up.chat_id is not None
    history = history_of(fetch_chat(openwebui, follow_up.chat_id))
    chain = tree.branch(history, history["currentId"])
    assert [m["content"] for m in chain] == [
        question,
        expected_reply(question),
        "after the crash",
        expected_reply("after the crash"),
    ]
    assert tree.problems(history) == []


async def test_turn_that_never_reached_open_webui_is_reported(
    make_bridge: BridgeFactory,
) -> None:
    async with make_bridge() as runtime:
        key = ThreadKey("test", "w", "c", "never-sent")
        conversation = await runtime.store.create_conversation(key, "fake-model")
        await runtime.store.start_turn(conversation.id, "m1", "u1", "a1")

    replies: list[RecordingReply] = []

    def reply_for(key: ThreadKey, turn: Turn) -> RecordingReply:
        replies.append(RecordingReply())
        return replies[-1]

    async with make_bridge() as runtime:
        results = await runtime.bridge.recover("test", reply_for, FAST)
        assert [type(r.error) for r in results] == [TurnInterrupted]
        assert [r.failure for r in replies] == [TurnInterrupted.user_message]
        assert [t.status for t in await runtime.store.turns(conversation.id)] == [TurnStatus.FAILED]
