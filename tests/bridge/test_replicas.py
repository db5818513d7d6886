"""Two bridges on one store, as two replicas on one database (the fake Open WebUI
0.12.x and a recording platform): a stop asked on one reaches the answer the other
writes; a replica that shuts down leaves its answer and queued questions to the
other, finished in place without a restart; a message one replica refused is no
question on the other."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client import REGISTRY

from bridge.actions import Act, Action, Outcome
from bridge.errors import QuestionRefused
from bridge.leases import LeaseTimes
from bridge.openwebui.organise import Rater
from bridge.policy import Limits
from bridge.store import TurnStatus
from tests.bridge.test_intake import (
    BridgeMaker,
    Setup,
    make_bridge,
    question,
    regenerate,
    submit,
    until,
)

pytestmark = pytest.mark.timeout(20)
__all__ = ["make_bridge"]  # the fixture, shared with test_intake

QUICK = LeaseTimes(lease=5.0, every=0.05)


async def replicas(make_bridge: BridgeMaker, **options: object) -> tuple[Setup, Setup]:
    a, b = await make_bridge(leases=QUICK, **options), await make_bridge(leases=QUICK, **options)
    for replica in (a, b):
        await replica.bridge.resume("test")  # what ``owui-bridge run`` does at start
    return a, b


async def test_a_stop_on_one_replica_stops_the_answer_the_other_writes(
    make_bridge: BridgeMaker,
) -> None:
    a, b = await replicas(make_bridge)
    a.fake.hold()
    answer = await submit(a, question("q1"))
    held = await a.fake.next_held()
    held.write("some text")
    await until(lambda: bool(a.platform.replies["q1"].updates))

    # The ⏹ reaches replica B, which writes nothing of this answer.
    stop = Action(Act.STOP, "test", "msg-q1", Rater("test", "u1", "Ann"), None)
    assert (await b.bridge.act(stop)).outcome is Outcome.DONE

    assert (await answer).status is TurnStatus.STOPPED
    assert a.fake.stops(await a.chat_id()) == 1 and held.stopped
    assert a.platform.replies["q1"].endings == 1  # ended once, by A, where it was shown
    assert "q1" not in b.platform.replies
    assert [t.status for t in await a.turns()] == [TurnStatus.STOPPED]


async def test_a_replica_that_shuts_down_leaves_its_answer_and_queue_to_the_other(
    make_bridge: BridgeMaker,
) -> None:
    a, b = await replicas(make_bridge)
    taken_over = REGISTRY.get_sample_value("owui_bridge_turns_taken_over_total") or 0.0
    a.fake.hold()
    await submit(a, question("q1", order="1"))
    held = await a.fake.next_held()
    held.write("the first half")
    await until(lambda: bool(a.platform.replies["q1"].updates))
    await submit(a, question("q2", order="2"))  # queued behind q1, on A
    await a.bridge.drain(0)  # A stops (a rolling deploy): no restart follows
    a.fake.auto()
    held.finish("the first half and the rest")

    # B notices within a round of its keeper: q1 finished in place, then q2.
    await until(lambda: "q2" in b.platform.finished, timeout=10)
    await until(lambda: b.bridge.idle)
    assert b.platform.given_ids["q1"] == ("msg-q1",)  # the message A had shown
    assert b.platform.replies["q1"].final == "the first half and the rest"
    assert b.platform.replies["q2"].final == "answer to q2"
    assert [t.status for t in await b.turns()] == [TurnStatus.DONE, TurnStatus.DONE]
    after = REGISTRY.get_sample_value("owui_bridge_turns_taken_over_total") or 0.0
    assert after == taken_over + 1  # q1 was running on A; q2 was only queued


async def test_a_message_one_replica_refused_is_no_question_on_the_other(
    make_bridge: BridgeMaker,
) -> None:
    a, b = await replicas(make_bridge, limits=Limits(max_question_chars=10))
    long = question("a question far too long", event_id="ev-message")
    with pytest.raises(QuestionRefused):
        await a.bridge.submit(long)
    # Its copy (Slack's second event kind) reaches the other replica: no second notice.
    assert await b.bridge.submit(replace(long, event_id="ev-app-mention")) is None
    # A new text for that message is a new question there.
    with pytest.raises(QuestionRefused):
        await b.bridge.submit(replace(long, event_id="ev-edit", text="still far too long"))


async def test_an_edit_on_one_replica_of_a_message_the_other_refused_is_answered(
    make_bridge: BridgeMaker,
) -> None:
    a, b = await replicas(make_bridge, limits=Limits(max_question_chars=10))
    long = question("far too long a question", event_id="ev-1")
    with pytest.raises(QuestionRefused):
        await a.bridge.submit(long)
    answer = await b.bridge.edit(replace(long, text="shorter", event_id="ev-edit"))
    assert answer is not None and (await answer).status is TurnStatus.DONE
    assert b.platform.replies[long.message_id].final == "answer to shorter"


async def test_another_answer_asked_on_one_replica_replaces_the_others_answer(
    make_bridge: BridgeMaker,
) -> None:
    a, b = await replicas(make_bridge)
    assert (await (await submit(a, question("q1")))).status is TurnStatus.DONE
    await a.store.set_reply_ids((await a.turns())[0].id, ["msg-q1"])  # where A showed it
    chat_id = await a.chat_id()
    # 🔁 on A's answer reaches B: B writes the new answer into A's message.
    acted = await b.bridge.act(regenerate("msg-q1", "ev-r1"))
    assert acted.outcome is Outcome.DONE and acted.answer is not None
    assert (await acted.answer).status is TurnStatus.DONE
    assert b.platform.given_ids["q1~ev-r1"] == ("msg-q1",)
    assert [t.status for t in await b.turns()] == [TurnStatus.DONE, TurnStatus.DONE]
    # The chat goes on from the new answer (the real tree: tests/contract).
    assert b.fake.history(chat_id)["currentId"] == (await b.turns())[1].assistant_message_id


async def test_the_replica_writing_an_answer_holds_its_lease(make_bridge: BridgeMaker) -> None:
    # One replica here: the gauge is the process's, and both would set it.
    a = await make_bridge(leases=QUICK)
    await a.bridge.resume("test")
    a.fake.hold()
    answer = await submit(a, question("q1"))
    held = await a.fake.next_held()

    def leases() -> float | None:
        return REGISTRY.get_sample_value("owui_bridge_leases_held")

    await until(lambda: leases() == 1.0)  # /metrics while it writes
    held.finish("done")
    assert (await answer).status is TurnStatus.DONE
    await until(lambda: leases() == 0.0)
