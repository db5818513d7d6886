"""What a reaction on an answer asks for. Pure: no I/O.

👍 / 👎 rate the answer (taking the reaction back takes the rating back), ⏹ (or
🛑) stops the answer being written, 🔁 asks for another answer to the same
question. Skin tones and the emoji variation selector do not change what a
reaction means; custom server emoji mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import discord

from bridge.actions import Reacted, act_of

THUMBS_UP = "\U0001f44d"
THUMBS_DOWN = "\U0001f44e"
STOP_BUTTON = "\u23f9"
STOP_SIGN = "\U0001f6d1"
REPEAT = "\U0001f501"
_VARIATION_SELECTOR = "\ufe0f"
_SKIN_TONES = range(0x1F3FB, 0x1F400)


ACTIONS = {
    THUMBS_UP: Reacted.UP,
    THUMBS_DOWN: Reacted.DOWN,
    STOP_BUTTON: Reacted.STOP,
    STOP_SIGN: Reacted.STOP,
    REPEAT: Reacted.REGENERATE,
}
VOTES = {Reacted.UP: 1, Reacted.DOWN: -1}


def action_of(name: str | None, *, custom: bool = False) -> Reacted | None:
    """The action a reaction's emoji asks for; None: an emoji the bridge ignores."""
    if custom or not name:
        return None
    plain = "".join(ch for ch in name if ch != _VARIATION_SELECTOR and ord(ch) not in _SKIN_TONES)
    return ACTIONS.get(plain)


@dataclass(frozen=True)
class Reaction:
    """One reaction added or removed, as plain values."""

    action: Reacted
    added: bool
    user_id: str
    channel_id: str
    message_id: str
    guild_id: str  # "" in a DM
    emoji: str
    from_bot: bool = False  # known for reactions added in a server (they carry the member)
    message_author_id: str = ""  # known for reactions added ("" on removals)


def from_raw(payload: discord.RawReactionActionEvent) -> Reaction | None:
    """The reaction a gateway event reports; None when its emoji means nothing here."""
    emoji = payload.emoji
    action = action_of(emoji.name, custom=emoji.id is not None)
    if action is None:
        return None
    member = payload.member
    return Reaction(
        action=action,
        added=payload.event_type == "REACTION_ADD",
        user_id=str(payload.user_id),
        channel_id=str(payload.channel_id),
        message_id=str(payload.message_id),
        guild_id=str(payload.guild_id) if payload.guild_id is not None else "",
        emoji=emoji.name or "",
        from_bot=bool(member is not None and member.bot),
        message_author_id=str(payload.message_author_id or ""),
    )


def worth_handling(reaction: Reaction, bot_id: str) -> bool:
    """A person's reaction on one of the bot's messages, that changes something:
    taking back ⏹ or 🔁 changes nothing."""
    if reaction.user_id == bot_id or reaction.from_bot:
        return False
    if reaction.message_author_id and reaction.message_author_id != bot_id:
        return False  # on someone else's message: never an answer
    return act_of(reaction.action, reaction.added) is not None


def reacted_channel(event_id: str) -> str | None:
    """The channel of the message a 🔁 was added to, from its event id (where the new
    answer goes: the old answer's channel); None for any other event."""
    kind, _, rest = event_id.partition(":")
    channel = rest.partition(":")[0]
    return channel if kind == "reaction" and channel.isdigit() else None


def regenerate_event_id(reaction: Reaction, answer_version: int) -> str:
    """The event id of a 🔁: a gateway replay of the same reaction is the same event;
    adding 🔁 again once the answer changed (``answer_version``: when its message
    was last edited) asks again."""
    return (
        f"reaction:{reaction.channel_id}:{reaction.message_id}:{reaction.user_id}:"
        f"{REPEAT}:{answer_version}"
    )
