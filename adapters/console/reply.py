"""The terminal as a platform: prints the answer as it grows."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from typing import TextIO

from bridge.errors import FileUnavailable
from bridge.events import FileRef, PlatformEvent
from bridge.reply import Capabilities, OutFile, ReplyHandle, SaveMessageIds

# A terminal has no length limit and no rate limit; a short interval keeps output smooth.
CONSOLE = Capabilities(max_message_length=1_000_000, min_update_interval=0.05)


class ConsoleReply:
    def __init__(self, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self._out = out
        self._err = err
        self._printed = ""

    async def start(self) -> None:
        pass

    async def update(self, text: str) -> bool:
        self._show(text)
        return True

    async def finish(self, text: str) -> None:
        self._show(text)
        self._out.write("\n")
        self._out.flush()

    async def attach(self, files: Sequence[OutFile]) -> None:
        pass

    async def fail(self, message: str) -> None:
        if self._printed:
            self._out.write("\n")
            self._out.flush()
        self._err.write(f"[bridge] {message}\n")
        self._err.flush()

    def _show(self, text: str) -> None:
        if text.startswith(self._printed):
            self._out.write(text[len(self._printed) :])
        else:
            # The text was revised, not extended: start the answer on a fresh line.
            self._out.write("\n" + text)
        self._printed = text
        self._out.flush()


class Unseen:
    """A reply nobody reads: a turn from an earlier terminal session, finished quietly."""

    async def start(self) -> None:
        pass

    async def update(self, text: str) -> bool:
        return True

    async def finish(self, text: str) -> None:
        pass

    async def attach(self, files: Sequence[OutFile]) -> None:
        pass

    async def fail(self, message: str) -> None:
        pass


class Console:
    """``bridge.reply.Platform`` for the terminal. Questions asked in this session are
    answered on screen; turns an earlier session left behind are settled unseen."""

    name = "console"
    capabilities = CONSOLE

    def __init__(self, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self._out = out
        self._err = err
        self.asked: set[str] = set()  # message ids typed in this session

    async def download(self, file: FileRef) -> AsyncIterator[bytes]:
        raise FileUnavailable("files are not read here yet")
        yield b""  # an async generator

    async def prepare(self, event: PlatformEvent) -> PlatformEvent:
        return event

    def reply(
        self, event: PlatformEvent, message_ids: Sequence[str], save_ids: SaveMessageIds
    ) -> ReplyHandle:
        if event.message_id in self.asked:
            return ConsoleReply(self._out, self._err)
        return Unseen()
