"""The names people see, for the model and for admins reading Open WebUI: a
question's author and the people, roles and channels it mentions.

What the gateway delivered is kept for the turn's ``prepare`` (no call needed);
after a restart the message is fetched again. Server nicknames seen on the gateway
are kept; one not seen is looked up once (``GET /guilds/{id}/members/{user}``) and
kept, a failed look-up is not (the user's own display name stands in).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp
import discord

from adapters.discord import inbound
from adapters.discord.gateway import partial_channel
from adapters.discord.text import Names
from bridge.cache import Lookups
from bridge.events import PlatformEvent

log = logging.getLogger(__name__)

SEEN_CACHE_SIZE = 2000  # delivered messages (and nicknames) kept without a call

_FAILURES = (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError)


@dataclass(frozen=True)
class Seen:
    """What a delivered message said about names, kept for its turn's ``prepare``."""

    author_name: str
    names: Names


class NameBook:
    """Names for one Discord client."""

    def __init__(self, client: discord.Client) -> None:
        self._client = client
        self._seen: Lookups[str, Seen] = Lookups(None, SEEN_CACHE_SIZE)
        # Server nicknames by (guild, user): a message fetched over REST carries no member.
        self._nicks: Lookups[tuple[str, str], str] = Lookups(None, SEEN_CACHE_SIZE)

    def delivered(self, message: inbound.DiscordMessage, *, nickname: bool) -> None:
        """A message the gateway delivered; ``nickname``: its author's name is the
        server's (it came with a member)."""
        if nickname and message.guild_id:
            self._nicks.put((message.guild_id, message.author_id), message.author_name)

    def keep(self, message: inbound.DiscordMessage) -> None:
        """Keep ``message``'s names for its turn."""
        self._seen.put(message.id, Seen(message.author_name, message.names))

    def drop(self, message_id: str) -> None:
        self._seen.forget(message_id)

    def seen(self, message_id: str) -> Seen | None:
        return self._seen.peek(message_id)

    async def of_question(self, event: PlatformEvent) -> Seen:
        """The names of ``event``'s message: as delivered, else from the message itself
        (after a restart the gateway's copy is gone); ids where Discord cannot say."""
        seen = self._seen.peek(event.message_id)
        if seen is not None:
            return seen
        channel = partial_channel(
            self._client, inbound.source_channel(event), event.thread.workspace
        )
        try:
            message = await channel.fetch_message(int(event.message_id))
        except _FAILURES as exc:
            log.info("cannot fetch message %s: %s", event.message_id, type(exc).__name__)
            return Seen(event.author_id, Names())
        name = await self.display_name(event.thread.workspace, message.author)
        return Seen(name, inbound.names_of(message))

    async def display_name(self, guild_id: str, user: discord.abc.User) -> str:
        """The name the server shows for ``user``: its nickname there when known (seen
        on the gateway, else looked up once), else the user's own display name."""
        if isinstance(user, discord.Member) or not guild_id or user.bot:
            return user.display_name
        key = (guild_id, str(user.id))

        async def fetch() -> str | None:
            # Over REST: the server may be on a shard another process holds (this one
            # took the turn over), so none of its members came on this one's gateway.
            try:
                member = await self._client.http.get_member(int(guild_id), user.id)
            except _FAILURES:
                return None  # left the server, or Discord said no: not kept
            return member.get("nick") or user.display_name

        return await self._nicks.get(key, fetch) or user.display_name

    async def name_of(self, guild_id: str, user_id: str) -> str:
        """The name people see for ``user_id`` when no member object came with what they
        did (a reaction in a DM); the id when Discord cannot say."""
        known = self._nicks.peek((guild_id, user_id)) if guild_id else None
        if known is not None:
            return known
        user = self._client.get_user(int(user_id))
        if user is None:
            try:
                user = await self._client.fetch_user(int(user_id))
            except _FAILURES:
                return user_id
        return await self.display_name(guild_id, user)
