"""A person's message edited or deleted in Discord (``MESSAGE_UPDATE`` /
``MESSAGE_DELETE`` as discord.py's raw events carry them). Pure: no I/O."""

from __future__ import annotations

from typing import Any

import discord


def edit_id(payload: discord.RawMessageUpdateEvent) -> str | None:
    """One id per edit of a person's text: the message's channel, id and
    ``edited_timestamp``. None for updates that are no edit of the text: Discord sends
    ``MESSAGE_UPDATE`` when it resolves a link's embeds (no ``edited_timestamp``),
    and for edits that leave the text as it was (as far as the cache can tell)."""
    data: dict[str, Any] = dict(payload.data)
    edited = data.get("edited_timestamp")
    if not edited or "content" not in data:
        return None
    cached = payload.cached_message
    if cached is not None and cached.content == data["content"]:
        return None
    return f"{payload.channel_id}:{payload.message_id}:edited:{edited}"
