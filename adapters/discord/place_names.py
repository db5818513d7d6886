"""The names of a server and a channel, for where a conversation lives (``places``).

From discord.py's cache, which holds the servers of the shards this process holds.
A turn of a server on another shard (taken over from a replica that died or stalled)
finds them over REST instead (``GET /guilds/{id}``, ``GET /channels/{id}``), kept for
a few minutes; ids where Discord cannot say. Without this, such a turn would file its
chat under ids (renaming the channel's Open WebUI folder).
"""

from __future__ import annotations

import logging

import aiohttp
import discord

from bridge.cache import Lookups

log = logging.getLogger(__name__)

NAMES_KEPT = 300.0  # seconds: a rename shows in a turn's folder this much later at worst
CACHE_SIZE = 1000
_THREAD_TYPES = frozenset({10, 11, 12})  # announcement, public and private threads
_FAILURES = (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError)


class PlaceNames:
    """Server and channel names for one Discord client."""

    def __init__(self, client: discord.Client) -> None:
        self._client = client
        self._fetched: Lookups[str, str] = Lookups(NAMES_KEPT, CACHE_SIZE)

    async def guild(self, guild_id: str) -> str:
        guild = self._client.get_guild(int(guild_id))
        if guild is not None:
            return guild.name

        async def fetch() -> str | None:
            try:
                data = await self._client.http.get_guild(int(guild_id), with_counts=False)
            except _FAILURES as exc:
                log.info("cannot look up server %s: %s", guild_id, type(exc).__name__)
                return None
            return str(data.get("name") or "") or None

        return await self._fetched.get(f"guild {guild_id}", fetch) or guild_id

    async def channel(self, channel_id: str) -> str:
        """The channel's name; a thread's parent's (an event stored without its place)."""
        channel = self._client.get_channel(int(channel_id))
        if isinstance(channel, discord.Thread) and channel.parent is not None:
            channel = channel.parent
        name = getattr(channel, "name", None)
        if channel is not None and name:
            return str(name)

        async def fetch() -> str | None:
            try:
                data: dict[str, object] = dict(await self._client.http.get_channel(int(channel_id)))
                if data.get("type") in _THREAD_TYPES and data.get("parent_id"):
                    data = dict(await self._client.http.get_channel(int(str(data["parent_id"]))))
            except _FAILURES as exc:
                log.info("cannot look up channel %s: %s", channel_id, type(exc).__name__)
                return None
            return str(data.get("name") or "") or None

        return await self._fetched.get(f"channel {channel_id}", fetch) or channel_id
