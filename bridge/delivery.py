"""Showing an answer on the platform, apart from following the model.

The follower hands every new text to ``offer`` and goes on at once: a slow or
rate-limited platform delays what the thread shows, never the answer itself,
so the answer timeout measures the model only. A pusher task sends the newest
text at most once per ``min_update_interval``; texts that arrive meanwhile are
skipped, never queued. ``finish`` always delivers the final text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from bridge.errors import ReplyStopped
from bridge.leases import may_write
from bridge.reply import Capabilities, OutFile, ReplyHandle

log = logging.getLogger(__name__)

Render = Callable[[str], str]
SKIP_PAUSE = 0.1  # seconds before a skipped update is offered again


def _same(text: str) -> str:
    return text


class Delivery:
    def __init__(
        self,
        handle: ReplyHandle,
        capabilities: Capabilities,
        render: Render = _same,
        *,
        replacing: bool = False,  # a regenerate: its messages hold the answer it replaces
    ) -> None:
        self._handle = handle
        self.capabilities = capabilities
        self._replacing = replacing
        self._interval = capabilities.min_update_interval
        self._render = render
        self._offered = ""  # the newest whole text, rendered only when it is shown
        self._shown = ""
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._pusher: asyncio.Task[None] | None = None
        self._finishing = False
        self.stopped = asyncio.Event()  # the person stopped the answer on the platform
        self.updates_sent = 0

    def note(self, line: str) -> None:
        """Show ``line`` above the answer (as its own paragraph) from now on."""
        render = self._render

        def noted(text: str) -> str:
            shown = render(text)
            return f"{line}\n\n{shown}" if shown else ""

        self._render = noted

    @property
    def shown_text(self) -> str:
        """The text the thread shows now (as rendered for the platform)."""
        return self._shown

    async def start(self) -> None:
        try:
            await self._handle.start()
        except Exception as exc:  # a thinking indicator is a nicety
            log.debug("reply start failed: %s", exc)
        self._pusher = asyncio.create_task(self._push())

    def offer(self, text: str) -> None:
        """The newest whole text; returns at once. Rendering waits for the next platform
        update: a long answer arrives in thousands of events, shown in a few dozen."""
        if text != self._offered:
            self._offered = text
            self._wake.set()

    async def _push(self) -> None:
        last_sent = float("-inf")
        while not self._closing.is_set():
            await self._next_offer()
            self._wake.clear()
            pause = last_sent + self._interval - time.monotonic()
            if pause > 0 and await self._pause(pause):
                return
            await may_write()
            if self._closing.is_set():
                continue
            text = self._render(self._offered)
            if not text or text == self._shown:
                continue
            try:
                shown = await self._handle.update(text)
            except ReplyStopped:
                self.stopped.set()
                return
            except Exception as exc:  # a lost intermediate update is harmless
                log.warning("update of a reply failed: %s", exc)
                shown = False
            last_sent = time.monotonic()
            if shown:
                self._shown = text
                self.updates_sent += 1
            else:
                # Over budget: offer the newest text again after a pause (never a spin,
                # even with no update interval at all).
                if await self._pause(max(self._interval, SKIP_PAUSE)):
                    return
                self._wake.set()

    async def _next_offer(self) -> None:
        """Wait for a new text (or closing)."""
        waits = {
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(self._closing.wait()),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    async def _pause(self, seconds: float) -> bool:
        """Sleep, cut short by closing; True if closing."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._closing.wait()
        return self._closing.is_set()

    async def _halt(self) -> None:
        """Stop the pusher; a platform call under way is let finish, never cut off."""
        self._closing.set()
        if self._pusher is not None:
            with contextlib.suppress(Exception):
                await self._pusher

    async def finish(self, text: str) -> None:
        """Show the final text; raises the platform's error if it cannot land."""
        await self._halt()
        final = self._render(text)
        await may_write()
        self._finishing = True
        await self._handle.finish(final)
        self._shown = final

    async def attach(self, files: Sequence[OutFile]) -> bool:
        """Post ``files`` with the finished answer. When the platform refuses them, the
        answer stays and one short notice says so (the reply's ``fail``, which puts it
        below the answer's last message or in a message of its own); never raises."""
        if not files:
            return True
        await may_write()
        try:
            await self._handle.attach(files)
            return True
        except Exception as exc:
            log.warning("could not attach %d file(s) to an answer: %s", len(files), exc)
        try:
            await self._handle.fail(ATTACH_FAILED)
        except Exception as exc:
            log.debug("noting a failed attach: %s", exc)
        return False

    async def end_stopped(self) -> None:
        """The person stopped the answer: keep what the thread shows."""
        await self._halt()
        if self._finishing:
            return  # the stop came from ``finish`` itself: the reply has had its last call
        if self._replacing and not self._shown.strip():
            # Nothing of the new answer shown: the messages still hold the answer it was
            # to replace, which stays whole with the notice beside it (as on a failure).
            await self.fail(STOPPED_EARLY)
            return
        await may_write()
        try:
            await self._handle.finish(stopped_text(self._shown))
        except Exception as exc:
            log.debug("ending a stopped reply: %s", exc)

    def abandon(self) -> None:
        """The turn is being cancelled (shutdown): drop the pusher without a last word."""
        if self._pusher is not None:
            self._pusher.cancel()

    async def fail(self, message: str) -> None:
        """One short message to the thread; never raises."""
        await self._halt()
        await may_write()
        try:
            await self._handle.fail(message)
        except Exception:
            log.exception("could not tell the thread that the turn failed")


STOPPED = "_(stopped)_"
STOPPED_EARLY = "Stopped before the new answer was written."
ATTACH_FAILED = "The files of this answer could not be posted here; the Open WebUI chat has them."


def stopped_text(shown: str) -> str:
    """What a stopped answer ends as: what was shown, marked stopped."""
    return f"{shown.rstrip()}\n\n{STOPPED}" if shown.strip() else STOPPED
