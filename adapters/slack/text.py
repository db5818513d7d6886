"""Slack text in and out. Pure functions, tested table-style."""

from __future__ import annotations

import re
from collections.abc import Mapping

_ANGLE = re.compile(r"<([^<>]+)>")
_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def mentioned_user_ids(text: str) -> list[str]:
    return list(dict.fromkeys(_USER.findall(text)))


def strip_bot_mention(text: str, bot_user_id: str) -> str:
    """Drop the mention that addresses the bot; other mentions stay."""
    return re.sub(rf"\s*<@{re.escape(bot_user_id)}(?:\|[^>]*)?>\s*", " ", text).strip()


def decode_inbound(text: str, users: Mapping[str, str]) -> str:
    """Slack's markup → what a person reads: names, channels, links, entities."""

    def replace(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + users.get(target[1:], label or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!subteam^"):
            return label or "@team"
        if target.startswith("!"):
            return "@" + target[1:].split("^")[0]
        if target.startswith("mailto:"):
            return label or target[len("mailto:") :]
        if label and label != target:
            return f"{label} ({target})"
        return target

    decoded = _ANGLE.sub(replace, text)
    # &amp; last, so "&amp;lt;" stays the literal text "&lt;".
    return decoded.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
