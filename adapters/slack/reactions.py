"""What a reaction on a message asks of the bridge. Pure: no I/O.

👍/👎 rate the answer they are on (and taking them back takes the rating back),
⏹ stops the answer under way, 🔁 asks for another answer to the same question.
Slack names reactions by their short names; a skin tone comes as a suffix
(``+1::skin-tone-2``) and means the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.actions import Reacted, act_of

ACTIONS: dict[str, Reacted] = {
    "+1": Reacted.UP,
    "thumbsup": Reacted.UP,
    "-1": Reacted.DOWN,
    "thumbsdown": Reacted.DOWN,
    "black_square_for_stop": Reacted.STOP,
    "stop_button": Reacted.STOP,
    "repeat": Reacted.REGENERATE,
}
EVENTS = ("reaction_added", "reaction_removed")


@dataclass(frozen=True)
class Reaction:
    """One reaction added to (or removed from) a message."""

    team: str
    user: str  # who reacted
    name: str  # the reaction's short name, skin tone left out
    channel: str
    ts: str  # the message reacted to
    item_user: str  # the author of that message ("" when Slack does not say)
    event_ts: str
    removed: bool
    user_team: str | None = None
    enterprise: str | None = None

    @property
    def action(self) -> Reacted | None:
        return ACTIONS.get(self.name)

    @property
    def event_id(self) -> str:
        """One id per reaction as Slack delivers it (its retries share it)."""
        return f"reaction:{self.channel}:{self.ts}:{self.user}:{self.event_ts}"


def parse(body: dict[str, Any]) -> Reaction | None:
    """The reaction in an Events API body, if it is one on a message."""
    event = body.get("event")
    if not isinstance(event, dict) or event.get("type") not in EVENTS:
        return None
    item = event.get("item")
    if not isinstance(item, dict) or item.get("type") != "message":
        return None  # reactions on files and file comments are not about answers
    user, name = event.get("user"), event.get("reaction")
    channel, ts = item.get("channel"), item.get("ts")
    if not (user and name and channel and ts):
        return None
    team = body.get("team_id") or event.get("team") or ""
    user_team = event.get("user_team") or event.get("source_team")
    enterprise = body.get("enterprise_id") or body.get("context_enterprise_id")
    return Reaction(
        team=str(team),
        user=str(user),
        name=str(name).split("::", 1)[0],
        channel=str(channel),
        ts=str(ts),
        item_user=str(event.get("item_user") or ""),
        event_ts=str(event.get("event_ts") or ""),
        removed=event.get("type") == "reaction_removed",
        user_team=str(user_team) if user_team else None,
        enterprise=str(enterprise) if enterprise else None,
    )


def wanted(reaction: Reaction, bot_user_id: str) -> bool:
    """Whether the reaction can matter: one the bridge acts on, by someone else, on a
    message of the bot's; only a rating is undone when its reaction is taken back."""
    action = reaction.action
    if action is None or reaction.user == bot_user_id:
        return False
    if reaction.item_user and reaction.item_user != bot_user_id:
        return False
    return act_of(action, not reaction.removed) is not None
