"""The per-thread queue over an in-memory SQLite store: platform order, one turn
per thread at a time, a wake that lands while the worker is leaving, a runner
that breaks, and a drain that leaves the rest to the next start."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from bridge.events import ThreadKey
from bridge.queue import ThreadQueue
from bridge.store import NewTurn, Taken, Turn, TurnStatus
from storage.sqlite import SqliteStore, open_store

pytestmark = pytest.mark.timeout(10)

_ids = itertools.count()


@pytest.fixture
async def store() -> AsyncIterator[SqliteStore]:
    store = await open_store(":memory:")
    yield store
    await store.close()


async def enqueue(store: SqliteStore, message: str, thread: str = "t", order: str = "") -> Turn:
    n = next(_ids)
    turn = await store.enqueue_turn(
        NewTurn(
            key=ThreadKey("test", "w", "c", thread),
            event_id=f"ev-{n}",
            platform_message_id=message,
            sort_key=order,
            event="",
            model="m",
            user_message_id=f"u-{n}",
            assistant_message_id=f"a-{n}",
        )
    )
    assert turn is not None
    return turn


class Runner:
    """Runs turns the way the core does (running, then settled), when told to."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.ran: list[str] = []
        self.gate: asyncio.Event | None = None  # set: turns wait for it
        self.active = 0
        self.most_active = 0

    async def __call__(self, turn: Turn) -> str:
        await self.store.mark_running(turn.id)
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            if turn.platform_message_id == "broken":
                raise RuntimeError("the runner has a bug")
            if self.gate is not None:
                await self.gate.wait()
            self.ran.append(turn.platform_message_id)
        finally:
            self.active -= 1
        await self.store.settle_turn(turn.id, TurnStatus.DONE, error=None, answer_id=None)
        return turn.platform_message_id


async def settled(queue: ThreadQueue[str]) -> None:
    async with asyncio.timeout(2):
        while not queue.idle:
            await asyncio.sleep(0.005)


async def test_a_wake_while_the_worker_reads_its_last_turn_is_not_lost(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = Runner(store)
    queue = ThreadQueue(store, runner, max_concurrent=4)
    first = await enqueue(store, "q1")
    read = store.take_turn
    late: list[Turn] = []

    async def racing_take_turn(conversation_id: int, owner: str, lease: float) -> Taken | None:
        turn = await read(conversation_id, owner, lease)
        if turn is None and not late:
            # A new question is queued after the worker read "nothing left" and
            # before it exits: the worker must look again.
            late.append(await enqueue(store, "q2"))
            queue.wake(conversation_id)
        return turn

    monkeypatch.setattr(store, "take_turn", racing_take_turn)
    waiter = queue.watch(first.id)
    queue.wake(first.conversation_id)
    assert await waiter == "q1"
    await settled(queue)

    assert late and runner.ran == ["q1", "q2"]
    assert await store.take_turn(first.conversation_id, queue.owner, 30) is None


async def test_turns_run_in_platform_order_one_per_thread(store: SqliteStore) -> None:
    runner = Runner(store)
    runner.gate = asyncio.Event()
    queue = ThreadQueue(store, runner, max_concurrent=4)
    for message, order in (("q3", "3"), ("q1", "1"), ("q2", "2")):
        turn = await enqueue(store, message, order=order)
        queue.wake(turn.conversation_id)
    await asyncio.sleep(0.05)
    assert runner.active == 1
    runner.gate.set()
    await settled(queue)
    assert runner.ran == ["q1", "q2", "q3"]
    assert runner.most_active == 1


async def test_threads_share_a_bounded_number_of_slots(store: SqliteStore) -> None:
    runner = Runner(store)
    runner.gate = asyncio.Event()
    queue = ThreadQueue(store, runner, max_concurrent=2)
    for thread in "abcd":
        turn = await enqueue(store, f"{thread}1", thread=thread)
        queue.wake(turn.conversation_id)
    await asyncio.sleep(0.05)
    assert runner.active == 2
    runner.gate.set()
    await settled(queue)
    assert sorted(runner.ran) == ["a1", "b1", "c1", "d1"]
    assert runner.most_active == 2


async def test_a_broken_runner_settles_its_turn_and_the_thread_goes_on(
    store: SqliteStore,
) -> None:
    queue = ThreadQueue(store, Runner(store), max_concurrent=2)
    broken = await enqueue(store, "broken", order="1")
    after = await enqueue(store, "q2", order="2")
    failed, ok = queue.watch(broken.id), queue.watch(after.id)
    queue.wake(broken.conversation_id)

    with pytest.raises(RuntimeError, match="bug"):
        await failed
    assert await ok == "q2"
    await settled(queue)
    turns = await store.turns(broken.conversation_id)
    assert [t.status for t in turns] == [TurnStatus.FAILED, TurnStatus.DONE]
    assert turns[0].error is not None and "the runner has a bug" in turns[0].error


async def test_drain_leaves_the_turns_it_cuts_off_for_the_next_start(store: SqliteStore) -> None:
    runner = Runner(store)
    runner.gate = asyncio.Event()  # never set: the first turn hangs
    queue = ThreadQueue(store, runner, max_concurrent=2)
    first = await enqueue(store, "q1", order="1")
    await enqueue(store, "q2", order="2")
    queue.wake(first.conversation_id)
    await asyncio.sleep(0.05)
    await queue.drain(0)
    assert queue.idle
    statuses = [t.status for t in await store.turns(first.conversation_id)]
    assert statuses == [TurnStatus.RUNNING, TurnStatus.QUEUED]
    await store.release_leases(queue.owner)  # as ``Bridge.drain`` does

    # The next process: the cut-off turn first, then the queued one.
    again = Runner(store)
    resumed = ThreadQueue(store, again, max_concurrent=2)
    assert await store.open_conversations("test", resumed.owner) == [first.conversation_id]
    resumed.wake(first.conversation_id)
    await settled(resumed)
    assert again.ran == ["q1", "q2"]
