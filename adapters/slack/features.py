"""What a Slack channel refuses, remembered per channel and recipient kind, for a while.

Native streaming and ``markdown_text`` are newer Slack features: some workspaces,
channel types or recipients (a Slack Connect user from another team) say no.
A refusal is remembered only for the place that gave it and only for error
codes that mean "not here"; a hiccup (rate limit, server error) switches
nothing off. It expires, so a workspace that enables a feature gets it back
without a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum

# chat.startStream answers these where streaming is not available to this app, this
# channel or this recipient (kind). ``invalid_arguments`` is what a recipient Slack
# cannot stream to has been seen to get; it is remembered per recipient kind only.
STREAMING_NOT_HERE = frozenset(
    {
        "feature_not_enabled",
        "method_not_supported_for_channel_type",
        "not_allowed",
        "not_allowed_token_type",
        "missing_scope",
        "unknown_method",
        "invalid_arguments",
    }
)
# About this one reply (no recipient to stream to): fall back, remember nothing.
STREAMING_NOT_FOR_THIS_REPLY = frozenset({"missing_recipient_user_id", "missing_recipient_team_id"})
# A workspace that ignores ``markdown_text`` answers as if there were no text at all.
MARKDOWN_NOT_HERE = frozenset({"no_text", "invalid_arguments"})

DEFAULT_TTL = 3600.0


class Recipient(Enum):
    """Whom a stream goes to, as far as Slack's answers differ."""

    TEAM = "team"  # a member of the workspace the event came from
    EXTERNAL = "external"  # someone from another team (Slack Connect)


class Refusals:
    """Shared by every reply of the process; each entry covers one place only."""

    def __init__(self, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl
        self._clock = clock
        self._until: dict[tuple[str, ...], float] = {}

    def streaming_refused(self, workspace: str, channel: str, recipient: Recipient) -> bool:
        return self._active(("stream", workspace, channel, recipient.value))

    def refuse_streaming(self, workspace: str, channel: str, recipient: Recipient) -> None:
        self._until[("stream", workspace, channel, recipient.value)] = self._clock() + self._ttl

    def markdown_refused(self, workspace: str, channel: str) -> bool:
        return self._active(("markdown", workspace, channel))

    def refuse_markdown(self, workspace: str, channel: str) -> None:
        self._until[("markdown", workspace, channel)] = self._clock() + self._ttl

    def _active(self, key: tuple[str, ...]) -> bool:
        until = self._until.get(key)
        if until is None:
            return False
        if self._clock() >= until:
            del self._until[key]
            return False
        return True
