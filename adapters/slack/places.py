"""Where a Slack conversation lives, as people know it: a channel's name for the
Open WebUI folder ("#support", "DMs"), a link back to the thread, and whether a
conversation is a channel or a direct message (reactions do not say).

Names come from ``conversations.info``, cached for ``TTL`` seconds; a
``channel_rename`` / ``group_rename`` event replaces a cached name at once.
Kinds are learnt for free from message events (they carry ``channel_type``).
A failed look-up is never cached: the channel id stands in for the name.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.facts import FAILED, describe
from bridge.cache import Lookups

log = logging.getLogger(__name__)

TTL = 600.0  # seconds a channel's name is trusted (renames also arrive as events)
CACHE_SIZE = 5000
DIRECT_NAME = "DMs"  # the one place every direct message files under
KINDS = frozenset({"channel", "group", "im", "mpim"})


@dataclass(frozen=True)
class ChannelInfo:
    id: str
    name: str  # without "#"; "" for a direct message
    kind: str  # "channel", "group" (private channel), "im" or "mpim"

    @property
    def direct(self) -> bool:
        return self.kind in ("im", "mpim")


class Places:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        ttl: float = TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._infos: Lookups[str, ChannelInfo] = Lookups(ttl, CACHE_SIZE, clock)
        self._kinds: OrderedDict[str, str] = OrderedDict()

    def learn(self, channel: str, kind: str) -> None:
        """A message event told the channel's type."""
        if kind not in KINDS or self._kinds.get(channel) == kind:
            return
        self._kinds[channel] = kind
        while len(self._kinds) > CACHE_SIZE:
            self._kinds.popitem(last=False)

    def renamed(self, channel: str, name: str) -> None:
        """A rename event: the new name counts from now on."""
        known = self._infos.peek(channel)
        kind = known.kind if known is not None else self._kinds.get(channel, "channel")
        self._infos.put(channel, ChannelInfo(channel, name.lstrip("#"), kind))

    async def info(self, channel: str) -> ChannelInfo | None:
        """The channel's name and kind (cached), or None when Slack cannot tell."""
        return await self._infos.get(channel, lambda: self._lookup(channel), None)

    async def name(self, channel: str, *, direct: bool) -> str:
        """The place as people know it: "#name", "DMs", or the id when unknown."""
        if direct or channel.startswith("D"):
            return DIRECT_NAME
        info = await self.info(channel)
        if info is None:
            return channel
        if info.direct:
            return DIRECT_NAME
        return f"#{info.name}" if info.name else channel

    async def direct(self, channel: str) -> bool:
        """Whether the conversation is a DM or group DM, for the access rules."""
        if channel.startswith("D"):
            return True
        kind = self._kinds.get(channel)
        if kind is None:
            info = await self.info(channel)
            kind = info.kind if info is not None else "channel"
        return kind in ("im", "mpim")

    async def _lookup(self, channel: str) -> ChannelInfo | None:
        try:
            response = await self._client.conversations_info(channel=channel)
        except FAILED as exc:
            log.info("cannot look up channel %s: %s", channel, describe(exc))
            return None
        found = response.get("channel")
        return info_from(channel, found if isinstance(found, dict) else {})


def info_from(channel: str, found: dict[str, Any]) -> ChannelInfo:
    """``conversations.info``'s channel object as what the bridge keeps."""
    if found.get("is_im"):
        kind = "im"
    elif found.get("is_mpim"):
        kind = "mpim"
    elif found.get("is_private") or found.get("is_group"):
        kind = "group"
    else:
        kind = "channel"
    name = "" if kind in ("im", "mpim") else str(found.get("name") or "")
    return ChannelInfo(channel, name, kind)


def thread_link(workspace_url: str, channel: str, thread_ts: str) -> str:
    """A link that opens the thread in Slack (the permalink of its first message),
    built from the workspace URL ``auth.test`` gives; "" when that is unknown."""
    if not workspace_url or not channel or not thread_ts:
        return ""
    return f"{workspace_url.rstrip('/')}/archives/{channel}/p{thread_ts.replace('.', '')}"
