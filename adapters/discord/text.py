"""Discord message text for the model and for thread names. Pure: no I/O.

Discord writes mentions as ``<@id>`` / ``<@!id>`` (users), ``<@&id>`` (roles),
``<#id>`` (channels) and custom emoji as ``<:name:id>`` / ``<a:name:id>``.
The names come from the message's own mention objects; an id nobody named
stays readable as ``@id`` / ``#id``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

THREAD_NAME_LIMIT = 100  # Discord: thread names are 1-100 characters
DEFAULT_THREAD_NAME = "Question"

_MENTION = re.compile(r"<(@!?|@&|#)(\d+)>")
_EMOJI = re.compile(r"<a?:(\w+):\d+>")
# Markdown that opens a line but says nothing in a title (headings, quotes, lists, fences).
_LINE_MARKUP = re.compile(r"^(?:[#>*\-+`~_|]+\s*)+")


@dataclass(frozen=True)
class Names:
    """Display names by id, as one message's mention objects carry them."""

    users: Mapping[str, str] = field(default_factory=dict)
    roles: Mapping[str, str] = field(default_factory=dict)
    channels: Mapping[str, str] = field(default_factory=dict)


def strip_leading_mention(content: str, mention_ids: frozenset[str]) -> str:
    """``content`` without the bot's mention (user or its own role) that opens it."""
    match = _MENTION.match(content.lstrip())
    if match is None or match.group(1) == "#" or match.group(2) not in mention_ids:
        return content
    return content.lstrip()[match.end() :].lstrip()


def readable(content: str, names: Names) -> str:
    """Mentions and custom emoji as a person reads them."""

    def name(match: re.Match[str]) -> str:
        kind, ident = match.group(1), match.group(2)
        if kind == "#":
            return "#" + names.channels.get(ident, ident)
        if kind == "@&":
            return "@" + names.roles.get(ident, ident)
        return "@" + names.users.get(ident, ident)

    return _EMOJI.sub(r":\1:", _MENTION.sub(name, content))


def thread_name(question: str, names: Names) -> str:
    """A thread title from the question: its first line that says something, readable,
    whitespace collapsed, 1-100 characters."""
    for line in readable(question, names).splitlines():
        words = " ".join(_LINE_MARKUP.sub("", line.strip()).split())
        if any(ch.isalnum() for ch in words):
            return _trim(words, THREAD_NAME_LIMIT)
    return DEFAULT_THREAD_NAME


def _trim(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:  # end at a word when that keeps most of the line
        cut = cut[:space]
    return cut.rstrip() + "…"
