"""The per-thread queue: each conversation's turns one at a time, in platform order.

The store is the queue (turns recorded as ``queued`` when their delivery is
claimed); this module only keeps one worker per conversation that has work,
and bounds how many turns run at once across conversations. New events and
start-up recovery go through the same ``wake``, so a recovered turn and a new
question in its thread can never run side by side.

Across processes sharing the database, a turn runs under this process's lease
(``bridge.leases``): ``take_turn`` hands a thread's next turn to one process at a
time, and ``keep`` renews the leases, passes on stops asked elsewhere, lets go of a
turn another process took over, and wakes the threads other processes left.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

from bridge import metrics
from bridge.leases import WRITING, Fence, LeaseTimes, new_owner, owner_dead
from bridge.store import Store, Turn, TurnStatus

log = logging.getLogger(__name__)

R = TypeVar("R")


class ThreadQueue(Generic[R]):
    def __init__(
        self,
        store: Store,
        run: Callable[[Turn], Awaitable[R]],
        *,
        max_concurrent: int,
        leases: LeaseTimes | None = None,
    ) -> None:
        self.owner = new_owner()
        self._leases = leases or LeaseTimes()
        self._fence = Fence(self._leases)
        self._taken: dict[int, int] = {}  # turns this process runs → their conversation
        self._closing = False
        self._store = store
        self._run = run
        self._slots = asyncio.Semaphore(max_concurrent)
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._rescan: set[int] = set()
        self._waiters: dict[int, asyncio.Future[R]] = {}

    @property
    def idle(self) -> bool:
        """No turn is queued or under way in this process."""
        return not self._workers

    def watch(self, turn_id: int) -> asyncio.Future[R]:
        """A future for the result of a turn this process will run."""
        return self._waiters.setdefault(turn_id, asyncio.get_running_loop().create_future())

    def forget(self, turn_id: int) -> None:
        """A queued turn that will never run (its question was deleted): its watchers
        see it cancelled."""
        waiter = self._waiters.pop(turn_id, None)
        if waiter is not None and not waiter.done():
            waiter.cancel()

    def wake(self, conversation_id: int) -> None:
        """The conversation has a turn to run (recorded in the store already)."""
        if conversation_id in self._workers:
            # The worker may be between reading "nothing left" and exiting: make it look again.
            self._rescan.add(conversation_id)
            return
        self._workers[conversation_id] = asyncio.create_task(
            self._work(conversation_id), name=f"conversation-{conversation_id}"
        )

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the turns under way and queued behind them,
        then stop the rest where they stand: the store keeps them queued or running
        for another process or the next start to resume (``Bridge.drain`` lets their
        leases go)."""
        self._closing = True  # ``keep`` renews what runs, and takes nothing new
        pending = list(self._workers.values())
        if pending:
            _, left = await asyncio.wait(pending, timeout=grace)
            for worker in left:
                worker.cancel()
            await asyncio.gather(*left, return_exceptions=True)
        # Nobody in this process will see those turns end.
        for waiter in self._waiters.values():
            waiter.cancel()

    async def reap(self) -> None:
        """End the leases of owners on this machine that no longer run (this process's
        predecessor, killed): their turns are resumed now, not when the leases expire."""
        for owner in await self._store.lease_owners():
            if owner_dead(owner, self.owner):
                log.info("lease owner %s is gone; its turns are taken over", owner)
                await self._store.release_leases(owner)

    async def keep(
        self, platforms: Callable[[], Iterable[str]], stop: Callable[[int, int], object]
    ) -> None:
        """Until cancelled, every ``LeaseTimes.every`` seconds: renew this process's
        leases; ``stop(conversation, turn)`` for each answer someone asked to stop;
        let go of turns another process took over; wake the conversations of
        ``platforms`` with turns nobody holds."""
        self._fence.active = True  # from now on, answers are written under the fence
        while True:
            await asyncio.sleep(self._leases.every)
            try:
                await self.tend(platforms(), stop)
            except Exception as exc:  # a database hiccup: the next round tries again
                log.warning("could not renew leases: %s", exc)

    async def tend(self, platforms: Iterable[str], stop: Callable[[int, int], object]) -> None:
        """One round of ``keep``."""
        began = time.monotonic()
        held = await self._store.renew_leases(self.owner, self._leases.lease)
        metrics.LEASES.set(len(held))
        for each in held:
            if each.stop_requested:
                stop(each.conversation_id, each.turn_id)
        kept = {each.turn_id for each in held}
        for turn_id, conversation_id in list(self._taken.items()):
            if turn_id in kept:
                continue
            turn = await self._store.turn_by_id(turn_id)
            worker = self._workers.get(conversation_id)
            if turn is not None and turn.lease_owner != self.owner and worker is not None:
                # This process stalled past its lease and another took the turn over:
                # only one may write the answer, and it is no longer this one.
                log.warning("turn %s was taken over by another process; letting it go", turn_id)
                worker.cancel()
        # Only now, the turns taken over being cancelled, may the others write again.
        self._fence.confirm(kept, began)
        if self._closing:
            return
        await self.reap()
        # A question just stored is its own replica's (it holds the question's shard,
        # say): others step in only once it was left a round.
        fresh = self._leases.every
        for platform in platforms:
            for conversation_id in await self._store.open_conversations(
                platform, self.owner, fresh
            ):
                self.wake(conversation_id)

    async def _work(self, conversation_id: int) -> None:
        try:
            while True:
                self._rescan.discard(conversation_id)
                async with self._slots:
                    began = time.monotonic()
                    taken = await self._store.take_turn(
                        conversation_id, self.owner, self._leases.lease
                    )
                    if taken is None:
                        if conversation_id in self._rescan:
                            continue
                        return
                    if taken.taken_from is not None:
                        metrics.TAKEN_OVER.inc()
                        log.info("turn %s taken over from %s", taken.turn.id, taken.taken_from)
                    self._taken[taken.turn.id] = conversation_id
                    self._fence.confirm([taken.turn.id], began)
                    try:
                        await self._run_one(taken.turn)
                    finally:
                        self._taken.pop(taken.turn.id, None)
                        self._fence.forget(taken.turn.id)
        finally:
            del self._workers[conversation_id]

    async def _run_one(self, turn: Turn) -> None:
        waiter = self._waiters.get(turn.id)
        # The answer's writes wait while this process's lease on it is not known fresh.
        writing = WRITING.set((self._fence, turn.id))
        try:
            result = await self._run(turn)
        except Exception as exc:
            # The runner settles every turn itself; reaching here is a bug or a broken
            # database. Settle the turn so the queue cannot spin on it.
            log.exception("turn %s could not be run", turn.id)
            await self._store.settle_turn(
                turn.id, TurnStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:500],
                answer_id=None,
            )  # fmt: skip
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
        else:
            if waiter is not None and not waiter.done():
                waiter.set_result(result)
        finally:
            WRITING.reset(writing)
            self._waiters.pop(turn.id, None)
