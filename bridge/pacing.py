"""Reply pacing: at most one update per ``min_update_interval``, latest text wins.

Answers arrive token by token; platforms allow an edit every second or so.
Intermediate texts are coalesced: only the newest pending text is sent when
the interval allows, and ``finish`` always delivers the final text.
"""

from __future__ import annotations

import asyncio
import time

from bridge.reply import Capabilities, ReplyHandle


class PacedReply:
    def __init__(self, handle: ReplyHandle, capabilities: Capabilities) -> None:
        self._handle = handle
        self._interval = capabilities.min_update_interval
        self._last_sent = float("-inf")
        self._sent_text = ""
        self._pending: str | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.updates_sent = 0

    @property
    def shown_text(self) -> str:
        """The text the thread shows now."""
        return self._sent_text

    async def start(self) -> None:
        await self._handle.start()

    async def update(self, text: str) -> None:
        self._pending = text
        wait = self._last_sent + self._interval - time.monotonic()
        if wait <= 0:
            await self._flush()
        elif self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_after(wait))

    async def _flush_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        # Shielded: a platform call under way is never cut off half-way.
        await asyncio.shield(self._flush())

    async def _flush(self) -> None:
        async with self._lock:
            # A slow platform call (e.g. a 429 waited out) may have held the lock
            # past this update's slot: keep the spacing from the last one sent.
            wait = self._last_sent + self._interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            text, self._pending = self._pending, None
            if text is None or text == self._sent_text:
                return
            self._last_sent = time.monotonic()
            await self._handle.update(text)
            # Counted from when the platform took it: a retried call ends late.
            self._last_sent = time.monotonic()
            self._sent_text = text
            self.updates_sent += 1

    async def _settle(self) -> None:
        self._pending = None
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        async with self._lock:  # let an update in flight land before the last word
            pass

    async def finish(self, text: str) -> None:
        await self._settle()
        await self._handle.finish(text)
        self._sent_text = text

    async def fail(self, message: str) -> None:
        await self._settle()
        await self._handle.fail(message)
