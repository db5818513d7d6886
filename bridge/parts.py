"""A reply in several platform messages: where its one failure notice goes. Both
platforms' replies ask this, so a failure reads the same on Slack and Discord."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Part:
    """One platform message of a reply."""

    id: str  # Slack ts / Discord message id
    shown: str | None  # what it shows; None: unknown (written before a restart)


@dataclass(frozen=True)
class NoticePlace:
    edit: Part | None  # the message the notice goes into; None: a new message
    text: str  # what that message shows then
    drop: tuple[Part, ...] = ()  # messages to delete first
    keep: tuple[Part, ...] = ()  # the messages the reply occupies besides the notice's


def notice_place(
    parts: Sequence[Part], notice: str, limit: int, *, replacing: bool = False
) -> NoticePlace:
    """Where the failure ``notice`` of a reply occupying ``parts`` goes.

    A regenerate that failed before its first words (``replacing``, nothing of its own
    shown) leaves the answer it was to replace whole: the notice is a new message and
    the reply keeps none of the old ones. Messages whose text is unknown (a restart)
    become the notice, the first of them, the rest deleted. Otherwise the notice goes
    below the text of the last message when it fits, else in a new message."""
    if replacing and all(part.shown is None for part in parts):
        return NoticePlace(None, notice)
    if any(part.shown is None for part in parts):
        return NoticePlace(parts[0], notice, drop=tuple(parts[1:]))
    if parts:
        shown = parts[-1].shown or ""
        combined = f"{shown}\n\n{notice}" if shown.strip() else notice
        if len(combined) <= limit:
            return NoticePlace(parts[-1], combined, keep=tuple(parts[:-1]))
    return NoticePlace(None, notice, keep=tuple(parts))
