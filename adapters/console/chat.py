"""``owui-bridge chat``: a terminal conversation through the same core and storage."""

from __future__ import annotations

import asyncio
import getpass
import secrets
import sys
import threading
import uuid
from typing import TextIO

from adapters.console.reply import Console
from bridge.errors import QuestionRefused
from bridge.events import PlatformEvent, ThreadKey
from bridge.intake import Bridge

NEW_THREAD = "/new"
QUIT = {"/quit", "/exit"}


def new_thread_name() -> str:
    return f"console-{secrets.token_hex(4)}"


def thread_key(name: str) -> ThreadKey:
    return ThreadKey(platform="console", workspace="", channel="terminal", thread=name)


class _Lines:
    """Lines typed at the terminal, read by a daemon thread when asked for. Ctrl-C
    exits at once: asyncio joins its own executor's threads at exit, so a ``readline``
    there would wait for Enter; a daemon thread is left behind."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._loop = asyncio.get_running_loop()
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._asked = threading.Semaphore(0)
        self._prompt: str | None = None
        threading.Thread(target=self._read, name="terminal input", daemon=True).start()

    async def next(self, prompt: str | None) -> str | None:
        """The next line (None at end of input), ``prompt`` shown first."""
        self._prompt = prompt
        self._asked.release()
        return await self._lines.get()

    def _read(self) -> None:
        while True:
            self._asked.acquire()
            if self._prompt:
                sys.stderr.write(self._prompt)
                sys.stderr.flush()
            line = self._stream.readline()
            try:
                self._loop.call_soon_threadsafe(
                    self._lines.put_nowait, None if line == "" else line.rstrip("\n")
                )
            except RuntimeError:
                return  # the loop is closed: the program is exiting
            if line == "":
                return


async def run_chat(
    bridge: Bridge,
    thread: str | None,
    *,
    model: str | None = None,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    stderr: TextIO = sys.stderr,
) -> int:
    """Converse until end of input; returns the number of failed turns."""
    console = Console(stdout, stderr)
    bridge.register(console)
    # A terminal from an earlier run is gone: what it left is settled unseen.
    await bridge.resume("console")
    interactive = stdin.isatty()
    name = thread or new_thread_name()
    stderr.write(f"[bridge] thread {name} (resume it with --thread {name})\n")
    user = getpass.getuser()
    failures = 0
    lines = _Lines(stdin)
    while True:
        line = await lines.next("you> " if interactive else None)
        if line is None or line.strip() in QUIT:
            return failures
        text = line.strip()
        if not text:
            continue
        if text == NEW_THREAD:
            name = new_thread_name()
            stderr.write(f"[bridge] new thread {name}\n")
            continue
        message_id = str(uuid.uuid4())
        event = PlatformEvent(
            event_id=message_id,
            thread=thread_key(name),
            message_id=message_id,
            author_id=user,
            author_name="",  # one speaker: no name prefix needed
            text=text,
            model=model,
        )
        console.asked.add(message_id)
        try:
            pending = await bridge.submit(event)
        except QuestionRefused as exc:  # e.g. longer than BRIDGE_MAX_QUESTION_CHARS
            stderr.write(f"[bridge] {exc.notice or exc.reason}\n")
            failures += 1
            continue
        result = await pending if pending else None
        if result is None or result.error is not None:
            failures += 1
