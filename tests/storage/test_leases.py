"""Turn leases on both back ends: several bridge processes on one database take each
thread's turns one process at a time, and a dead process's turns pass to another."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.store import TurnStatus
from tests.storage.conftest import Db
from tests.storage.test_store import KEY, enqueue

A, B = "replica-a", "replica-b"


@pytest.fixture
async def two(db: Db) -> AsyncIterator[tuple[Any, Any]]:
    """Two stores on one database, as two replicas hold them."""
    a, b = await db.open(), await db.open()
    yield a, b
    await a.close()
    await b.close()


async def conversation_id(store: Any) -> int:
    conversation = await store.get_conversation(KEY)
    assert conversation is not None
    return int(conversation.id)


async def test_a_thread_leased_to_one_replica_is_not_taken_by_another(
    two: tuple[Any, Any],
) -> None:
    a, b = two
    first = await enqueue(a, "m1", order="1")
    await enqueue(b, "m2", order="2")
    cid = await conversation_id(a)
    taken = await a.take_turn(cid, A, 30)
    assert taken is not None and taken.turn.id == first and taken.taken_from is None
    # B stored the second question, but the thread is A's while A's lease lasts:
    # B neither takes it nor is pointed at it.
    assert await b.take_turn(cid, B, 30) is None
    assert await b.open_conversations("slack", B) == []
    assert await a.open_conversations("slack", A) == [cid]
    # A answers the first; the second is anyone's, in order.
    await a.settle_turn(first, TurnStatus.DONE, error=None, answer_id="a-m1")
    second = await b.take_turn(cid, B, 30)
    assert second is not None and second.turn.platform_message_id == "m2"


async def test_only_one_of_two_replicas_taking_at_once_gets_the_turn(
    two: tuple[Any, Any],
) -> None:
    a, b = two
    await enqueue(a, "m1")
    cid = await conversation_id(a)
    for _ in range(10):
        got = await asyncio.gather(a.take_turn(cid, A, 30), b.take_turn(cid, B, 30))
        assert sum(taken is not None for taken in got) == 1
        await a.release_leases(A)
        await b.release_leases(B)


async def test_a_dead_replicas_running_turn_is_taken_over_when_its_lease_expires(
    two: tuple[Any, Any],
) -> None:
    a, b = two
    running = await enqueue(a, "m1", order="1")
    await enqueue(a, "m2", order="2")
    cid = await conversation_id(a)
    assert await a.take_turn(cid, A, 0.5) is not None
    await a.mark_running(running)
    assert await b.take_turn(cid, B, 30) is None
    assert await b.lease_owners() == [A]
    await asyncio.sleep(0.7)  # A stops renewing (it died): its lease runs out
    assert await b.lease_owners() == []
    assert await b.open_conversations("slack", B) == [cid]
    taken = await b.take_turn(cid, B, 30)
    # The cut-off turn first (resumed in place), named as taken from A.
    assert taken is not None and taken.turn.id == running and taken.taken_from == A
    assert taken.turn.status is TurnStatus.RUNNING
    # A, back from a stall, has lost it: renewing keeps nothing.
    assert await a.renew_leases(A, 30) == []
    assert [h.turn_id for h in await b.renew_leases(B, 30)] == [running]


async def test_a_released_or_expired_lease_lets_another_replica_take_at_once(
    two: tuple[Any, Any],
) -> None:
    a, b = two
    running = await enqueue(a, "m1")
    cid = await conversation_id(a)
    await a.take_turn(cid, A, 30)
    await a.mark_running(running)
    await a.release_leases(A)  # a clean shutdown
    taken = await b.take_turn(cid, B, 30)
    assert taken is not None and taken.turn.id == running and taken.taken_from == A
    await b.release_leases(B)  # B found dead by a process on its machine
    again = await a.take_turn(cid, A, 30)
    assert again is not None and again.taken_from == B


async def test_a_stop_asked_on_one_replica_reaches_the_one_writing_the_answer(
    two: tuple[Any, Any],
) -> None:
    a, b = two
    running = await enqueue(a, "m1")
    cid = await conversation_id(a)
    await a.take_turn(cid, A, 30)
    await a.mark_running(running)
    held = await a.renew_leases(A, 30)
    assert [(h.turn_id, h.conversation_id, h.stop_requested) for h in held] == [
        (running, cid, False)
    ]
    assert await b.request_stop(running) is True
    assert [h.stop_requested for h in await a.renew_leases(A, 30)] == [True]
    await a.settle_turn(running, TurnStatus.STOPPED, error=None, answer_id="a-m1")
    assert await b.request_stop(running) is False  # nothing left to stop
    assert await a.renew_leases(A, 30) == []


async def test_a_question_just_stored_is_left_to_its_replica_for_a_round(
    two: tuple[Any, Any],
) -> None:
    a, b = two
    await enqueue(a, "m1")
    cid = await conversation_id(a)
    # Stored by A a moment ago: B is not pointed at it (A takes it itself)...
    assert await b.open_conversations("slack", B, 60) == []
    # ...unless it waited longer than that, or at start-up (nothing is fresh then).
    assert await b.open_conversations("slack", B, 0) == [cid]
    # Once leased and let go (its replica stopped), it is anyone's at once.
    await a.take_turn(cid, A, 30)
    await a.release_leases(A)
    assert await b.open_conversations("slack", B, 60) == [cid]
