"""The terminal's reply handle: prints the answer as it grows."""

from __future__ import annotations

import sys
from typing import TextIO

from bridge.reply import Capabilities

# A terminal has no length limit and no rate limit; a short interval keeps output smooth.
CONSOLE = Capabilities(max_message_length=1_000_000, min_update_interval=0.05)


class ConsoleReply:
    def __init__(self, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self._out = out
        self._err = err
        self._printed = ""

    async def start(self) -> None:
        pass

    async def update(self, text: str) -> None:
        self._show(text)

    async def finish(self, text: str) -> None:
        self._show(text)
        self._out.write("\n")
        self._out.flush()

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
