"""The per-thread queue: each conversation's turns one at a time, in platform order.

The store is the queue (turns recorded as ``queued`` when their delivery is
claimed); this module only keeps one worker per conversation that has work,
and bounds how many turns run at once across conversations. New events and
start-up recovery go through the same ``wake``, so a recovered turn and a new
question in its thread can never run side by side.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from bridge.store import Store, Turn, TurnStatus

log = logging.getLogger(__name__)

R = TypeVar("R")


class ThreadQueue(Generic[R]):
    def __init__(
        self, store: Store, run: Callable[[Turn], Awaitable[R]], *, max_concurrent: int
    ) -> None:
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
        then stop the rest where they stand: the store keeps them queued or running for
        the next start to resume."""
        pending = list(self._workers.values())
        if not pending:
            return
        _, left = await asyncio.wait(pending, timeout=grace)
        for worker in left:
            worker.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        # Nobody in this process will see those turns end.
        for waiter in self._waiters.values():
            waiter.cancel()

    async def _work(self, conversation_id: int) -> None:
        try:
            while True:
                self._rescan.discard(conversation_id)
                turn = await self._store.next_turn(conversation_id)
                if turn is None:
                    if conversation_id in self._rescan:
                        continue
                    return
                async with self._slots:
                    await self._run_one(turn)
        finally:
            del self._workers[conversation_id]

    async def _run_one(self, turn: Turn) -> None:
        waiter = self._waiters.get(turn.id)
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
            self._waiters.pop(turn.id, None)
