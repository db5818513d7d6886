"""Which turn a log line is about: the turn, its thread, chat and platform, set
while a turn runs and added to every record logged meanwhile (by any module, in
that turn's task), so a line can be traced without repeating ids in messages."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from bridge.events import ThreadKey


@dataclass(frozen=True)
class TurnContext:
    turn: int
    thread: str  # platform/workspace/channel/thread
    platform: str
    chat_id: str | None


_current: contextvars.ContextVar[TurnContext | None] = contextvars.ContextVar(
    "owui_bridge_turn", default=None
)


@contextmanager
def turn_context(turn: int, key: ThreadKey, chat_id: str | None) -> Iterator[None]:
    thread = "/".join((key.platform, key.workspace, key.channel, key.thread))
    token = _current.set(TurnContext(turn, thread, key.platform, chat_id))
    try:
        yield
    finally:
        _current.reset(token)


def chat_known(chat_id: str) -> None:
    """The running turn's chat was created: later lines carry its id."""
    current = _current.get()
    if current is not None and current.chat_id != chat_id:
        _current.set(replace(current, chat_id=chat_id))


class TurnFields(logging.Filter):
    """Adds ``turn``, ``thread``, ``platform`` and ``chat_id`` (None outside a turn)."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _current.get()
        record.__dict__.update(
            turn=current.turn if current else None,
            thread=current.thread if current else None,
            platform=current.platform if current else None,
            chat_id=current.chat_id if current else None,
        )
        return True
