"""Work an event starts but its acknowledgement must not wait for (a rating sent to
Open WebUI, a thread title): run in the background, given a moment to finish
when the adapter stops, and never lost in silence when it fails."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

CLOSE_WAIT = 5.0  # seconds ``close`` lets chores still running finish


class Chores:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.ensure_future(self._run(work, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, wait: float = CLOSE_WAIT) -> None:
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=wait)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    @staticmethod
    async def _run(work: Coroutine[Any, Any, None], what: str) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:  # a chore is never worth more than its log line
            log.exception("%s failed", what)
