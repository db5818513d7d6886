"""How one turn ended, as its watchers (the intake's callers, tests) see it."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.openwebui.flows import Placement
from bridge.store import TurnStatus


@dataclass
class TurnResult:
    status: TurnStatus
    chat_id: str | None = None
    answer: str = ""
    error: BaseException | None = None
    increments: int = 0
    first_text_at: float | None = None  # monotonic time the first text was offered to the reply
    tree_problems: list[str] = field(default_factory=list)
    reached: bool = False  # the answer exists in the chat (whole or partial)
    placed: Placement | None = None  # what the chat got at creation, if this turn created it
