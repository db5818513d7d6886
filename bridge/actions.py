"""What people do to the bridge's answers (react 👍/👎, ⏹, 🔁), as one type the
adapters translate their platform's events into. The core decides everything
else: whether the message holds an answer, whether the person may act there,
whether it is the answer being written or the thread's newest one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import TYPE_CHECKING

from bridge.events import ThreadKey
from bridge.openwebui.organise import Rater
from bridge.policy import Asker

if TYPE_CHECKING:
    from bridge.results import TurnResult


class Act(StrEnum):
    RATE = "rate"  # 👍 (vote 1) or 👎 (vote -1) added
    UNRATE = "unrate"  # that reaction taken back
    STOP = "stop"  # ⏹: stop the answer if it is the one being written
    REGENERATE = "regenerate"  # 🔁: another answer to the thread's newest question


@dataclass(frozen=True)
class Action:
    act: Act
    platform: str
    message_id: str  # the platform message holding the answer acted on
    person: Rater  # who acted (their platform id and display name)
    asker: Asker | None  # what the adapter found about them; None: a local source
    event_id: str = ""  # the platform delivery: a replayed 🔁 asks once
    vote: int = 0  # RATE / UNRATE: 1 👍, -1 👎


class Outcome(StrEnum):
    DONE = "done"
    NOT_AN_ANSWER = "not an answer of the bridge"
    NOT_ALLOWED = "person may not act here"
    NOTHING = "nothing to do"  # ⏹ on an answer not being written, a replayed delivery
    REFUSED = "refused"  # a 🔁 that cannot be done now (``notice`` says why)


@dataclass(frozen=True)
class Acted:
    outcome: Outcome
    notice: str | None = None  # what to tell the person, privately
    thread: ThreadKey | None = None  # the answer's thread (where to tell them)
    answer: asyncio.Future[TurnResult] | None = None  # a 🔁's new answer, when queued


class Reacted(Enum):
    """What a reaction's emoji asks for, whatever the platform calls the emoji."""

    UP = "up"
    DOWN = "down"
    STOP = "stop"
    REGENERATE = "regenerate"


def act_of(reacted: Reacted, added: bool) -> tuple[Act, int] | None:
    """The action and vote a reaction added (or taken back) is; None: it changes
    nothing (taking back ⏹ or 🔁)."""
    vote = {Reacted.UP: 1, Reacted.DOWN: -1}.get(reacted, 0)
    if vote:
        return (Act.RATE if added else Act.UNRATE), vote
    if not added:
        return None
    return (Act.STOP if reacted is Reacted.STOP else Act.REGENERATE), 0
