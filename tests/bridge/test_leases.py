"""Two queues on one SQLite file, as two bridge processes on one database: each
thread's turn runs in one of them, a dead one's turn passes to the other after its
lease, a stop asked in one reaches the one writing, and a process that stalled
past its lease lets the turn go. Plus how a process tells a dead owner on its
own machine from a live one."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge import metrics
from bridge.leases import LeaseTimes, may_write, new_owner, owner_dead
from bridge.queue import ThreadQueue
from bridge.store import Turn, TurnStatus
from storage.sqlite import SqliteStore, open_store
from tests.bridge.test_queue import Runner, enqueue, settled

pytestmark = pytest.mark.timeout(20)

SHORT = LeaseTimes(lease=0.5, every=0.1)


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, SqliteStore]]:
    a, b = await open_store(tmp_path / "bridge.db"), await open_store(tmp_path / "bridge.db")
    yield a, b
    await a.close()
    await b.close()


def nothing(conversation_id: int, turn_id: int) -> None:
    pass


async def until(condition: object, what: str) -> None:
    async with asyncio.timeout(10):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_a_turn_of_a_replica_that_died_is_finished_by_the_other(
    stores: tuple[SqliteStore, SqliteStore],
) -> None:
    a_store, b_store = stores
    hangs = Runner(a_store)
    hangs.gate = asyncio.Event()  # A dies while answering: never set
    a = ThreadQueue(a_store, hangs, max_concurrent=2, leases=SHORT)
    first = await enqueue(a_store, "q1", order="1")
    await enqueue(a_store, "q2", order="2")
    a.wake(first.conversation_id)
    await until(lambda: hangs.active == 1, "A answers")

    finishes = Runner(b_store)
    b = ThreadQueue(b_store, finishes, max_concurrent=2, leases=SHORT)
    await b.tend(["test"], nothing)
    assert b.idle  # A's lease holds the thread

    a._workers[first.conversation_id].cancel()  # A is gone: no renewal, nothing released
    taken_before = metrics.TAKEN_OVER._value.get()
    await asyncio.sleep(SHORT.lease + 0.1)
    await b.tend(["test"], nothing)
    await until(lambda: finishes.ran == ["q1", "q2"], "B finishes A's turn, then the next")
    await settled(b)
    assert [t.status for t in await b_store.turns(first.conversation_id)] == [TurnStatus.DONE] * 2
    assert metrics.TAKEN_OVER._value.get() == taken_before + 1


async def test_a_stop_asked_on_the_other_replica_stops_the_answer(
    stores: tuple[SqliteStore, SqliteStore],
) -> None:
    a_store, b_store = stores
    runner = Runner(a_store)
    runner.gate = asyncio.Event()
    a = ThreadQueue(a_store, runner, max_concurrent=2, leases=SHORT)
    turn = await enqueue(a_store, "q1")
    a.wake(turn.conversation_id)
    await until(lambda: runner.active == 1, "A answers")
    stops: list[tuple[int, int]] = []

    def stop(conversation_id: int, turn_id: int) -> None:
        stops.append((conversation_id, turn_id))
        assert runner.gate is not None
        runner.gate.set()

    await a.tend(["test"], stop)
    assert stops == []
    assert await b_store.request_stop(turn.id)  # ⏹ reached replica B
    await a.tend(["test"], stop)
    assert stops == [(turn.conversation_id, turn.id)]
    await settled(a)


async def test_a_replica_that_stalled_past_its_lease_lets_the_turn_go(
    stores: tuple[SqliteStore, SqliteStore],
) -> None:
    a_store, b_store = stores
    stalled = Runner(a_store)
    stalled.gate = asyncio.Event()
    a = ThreadQueue(a_store, stalled, max_concurrent=2, leases=SHORT)
    turn = await enqueue(a_store, "q1")
    a.wake(turn.conversation_id)
    await until(lambda: stalled.active == 1, "A answers")
    await asyncio.sleep(SHORT.lease + 0.1)  # A renewed nothing meanwhile
    finishes = Runner(b_store)
    b = ThreadQueue(b_store, finishes, max_concurrent=2, leases=SHORT)
    await b.tend(["test"], nothing)
    await until(lambda: finishes.ran == ["q1"], "B takes the turn over")
    await a.tend(["test"], nothing)  # A wakes up: the turn is no longer its own
    await settled(a)
    stalled.gate.set()
    assert stalled.ran == []  # A wrote nothing more
    assert [t.status for t in await a_store.turns(turn.conversation_id)] == [TurnStatus.DONE]


class Writer(Runner):
    """A runner that writes its answer to the platform (as ``Delivery`` does) after
    its gate: ``wrote`` lists what reached the platform."""

    def __init__(self, store: SqliteStore) -> None:
        super().__init__(store)
        self.wrote: list[str] = []

    async def __call__(self, turn: Turn) -> str:
        await self.store.mark_running(turn.id)
        self.active += 1
        if self.gate is not None:
            await self.gate.wait()
        await may_write()
        self.wrote.append(turn.platform_message_id)
        await self.store.settle_turn(turn.id, TurnStatus.DONE, error=None, answer_id=None)
        return turn.platform_message_id


async def test_a_stalled_replica_writes_nothing_it_had_buffered_once_it_wakes(
    stores: tuple[SqliteStore, SqliteStore],
) -> None:
    a_store, b_store = stores
    stalled = Writer(a_store)
    stalled.gate = asyncio.Event()
    a = ThreadQueue(a_store, stalled, max_concurrent=2, leases=SHORT)
    keeper = asyncio.create_task(a.keep(lambda: ["test"], nothing))
    turn = await enqueue(a_store, "q1")
    a.wake(turn.conversation_id)
    await until(lambda: stalled.active == 1, "A answers")
    keeper.cancel()  # A stalls: it renews nothing…
    await asyncio.sleep(SHORT.lease + 0.1)
    finishes = Runner(b_store)
    b = ThreadQueue(b_store, finishes, max_concurrent=2, leases=SHORT)
    await b.tend(["test"], nothing)
    await until(lambda: finishes.ran == ["q1"], "B takes the turn over")
    # …and wakes with the rest of the answer at hand, before its first renewal.
    stalled.gate.set()
    await asyncio.sleep(0.05)
    assert stalled.wrote == []  # not before it knows the turn is still its own
    await a.tend(["test"], nothing)  # it is not: A lets it go
    await settled(a)
    assert stalled.wrote == []
    assert [t.status for t in await a_store.turns(turn.conversation_id)] == [TurnStatus.DONE]


def _owner_of_child(code: str) -> tuple[subprocess.Popen[str], str]:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from bridge.leases import new_owner; print(new_owner(), flush=True); {code}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    return child, child.stdout.readline().strip()


def test_an_owner_on_this_machine_is_dead_once_its_process_is_gone() -> None:
    me = new_owner()
    assert not owner_dead(me, me)
    child, owner = _owner_of_child("import time; time.sleep(60)")
    try:
        assert not owner_dead(owner, me)  # running
    finally:
        child.kill()
        child.wait()
    assert owner_dead(owner, me)  # killed
    # The same PID started again (a container's PID 1 after a restart) is someone else.
    host, namespace, pid, started, nonce = me.split(":")
    assert owner_dead(f"{host}:{namespace}:{pid}:{int(started) - 1}:{nonce}", me)
    # Another instance in this very process is alive, and so is any owner elsewhere.
    assert not owner_dead(new_owner(), me)
    assert not owner_dead(f"elsewhere:{namespace}:{pid}:1:abc", me)
    assert not owner_dead("not an owner name", me)
