"""Who asked, and where, as ``bridge.policy`` needs it: the facts about a message's
author, from what the message carries and, when that is not enough, from Discord.

* ``workspace`` is the guild; ``channel`` the channel, a thread (or forum post)
  counting as its parent channel; "" in DMs. A thread discord.py has not cached
  has its parent looked up once (``GET /channels/{id}``, kept for good): the
  channel rules and the Open WebUI folder follow the parent too. If that fails,
  a channel list refuses the asker as unverified; without one the thread
  stands in for its parent.
* The same facts are built for a reaction (``of_reaction``) and a slash command
  (``of_member``): what a person does to an answer is judged like a question.
* ``roles`` are the author's role ids, **@everyone included** (its id is the
  guild's, as in discord.py's ``Member.roles``), so ``BRIDGE_ALLOWED_ROLES=<guild
  id>`` admits everyone in that guild. A guild message carries its author's
  member object, so no call is made for it.
* Every Discord user is a ``MEMBER``: Discord has no guests or external users.
* A DM has no guild. When the policy restricts workspaces or roles, the user's
  membership is looked up (``GET /guilds/{guild}/members/{user}``, cached for
  ``MEMBERSHIP_TTL``) in the bot's guilds that could admit them; the first
  membership that satisfies the roles (else the first found) is the DM's
  workspace and roles, and none at all leaves the workspace "" (a workspace
  list then refuses it silently).
* A look-up that fails (not a 404) never admits: the asker is ``UNKNOWN``, which
  the policy refuses as unverified; where the policy would not (guests and
  external users both allowed), ``None`` tells the adapter not to answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import aiohttp
import discord

from adapters.discord.inbound import ChannelKind, DiscordMessage
from bridge.cache import Lookups
from bridge.policy import AccessPolicy, Asker, UserKind

log = logging.getLogger(__name__)

MEMBERSHIP_TTL = 600.0  # seconds a looked-up guild membership (or its absence) is trusted
LOOKUP_TIMEOUT = 10.0  # seconds one look-up may take (discord.py retries 5xx by itself)
CACHE_SIZE = 10_000  # memberships and thread parents remembered

# What a look-up may raise when Discord cannot tell us (NotFound is handled before).
_FAILURES = (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError)


class LookupFailed(Exception):
    """Discord could not tell us (an error other than 404, or no answer in time)."""


def member_roles(author: discord.abc.User) -> frozenset[str] | None:
    """The role ids the message's author holds (@everyone included), from the member
    object a guild message carries; None when the message carries none."""
    if not isinstance(author, discord.Member):
        return None
    return frozenset(str(role.id) for role in author.roles)


def parent_channel(channel: object, parsed: DiscordMessage) -> str | None:
    """The channel a guild message counts as posted in: a thread's parent; None for a
    thread discord.py has not cached (its parent must be looked up)."""
    if isinstance(channel, discord.Thread):
        return str(channel.parent_id)
    if parsed.kind is ChannelKind.UNKNOWN:
        return None
    return parsed.channel_id


def cached_parent(channel: object, channel_id: str) -> str | None:
    """``parent_channel`` for a channel discord.py may have cached (None: it has not,
    or it is a thread whose parent is unknown)."""
    if isinstance(channel, discord.Thread):
        return str(channel.parent_id) if channel.parent_id else None
    if isinstance(channel, discord.abc.GuildChannel):
        return channel_id
    return None


class AskerFacts:
    """Builds the ``Asker`` of a message (or of a DM user, for ``/new``)."""

    def __init__(
        self,
        client: discord.Client,
        policy: AccessPolicy,
        *,
        ttl: float = MEMBERSHIP_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._policy = policy
        # (guild, user) → roles; None: not a member (an answer too, kept as long).
        self._members: Lookups[tuple[str, str], frozenset[str]] = Lookups(
            ttl, CACHE_SIZE, clock, keep_none=True
        )
        self._parents: Lookups[str, str] = Lookups(None, CACHE_SIZE)  # thread → parent

    async def of_message(self, message: discord.Message, parsed: DiscordMessage) -> Asker | None:
        """The facts about ``message``'s author and place; None: they cannot be verified
        and the policy would not refuse an unverified asker (do not answer)."""
        if parsed.kind is ChannelKind.DM:
            return await self.of_dm_user(parsed.author_id)
        channel = parent_channel(message.channel, parsed)
        return await self._in_guild(
            parsed.guild_id,
            parsed.author_id,
            member_roles(message.author),
            channel,
            parsed.channel_id,
        )

    async def of_reaction(
        self, guild: str, channel_id: str, user: str, member: discord.Member | None
    ) -> Asker | None:
        """The facts about ``user`` reacting in ``channel_id`` (``guild`` "" in a DM);
        ``member``: what a reaction added in a server carries (None on removals)."""
        if not guild:
            return await self.of_dm_user(user)
        roles = member_roles(member) if member is not None else None
        known = self._client.get_channel(int(channel_id))
        return await self._in_guild(
            guild, user, roles, cached_parent(known, channel_id), channel_id
        )

    async def of_member(
        self, guild: str, channel: object, channel_id: str, user: discord.abc.User
    ) -> Asker | None:
        """The facts about ``user`` (a slash command's member) in ``channel``."""
        return await self._in_guild(
            guild, str(user.id), member_roles(user), cached_parent(channel, channel_id), channel_id
        )

    async def _in_guild(
        self,
        guild: str,
        user: str,
        roles: frozenset[str] | None,
        channel: str | None,
        channel_id: str,
    ) -> Asker | None:
        """``channel``: the place when known without a call, None for an uncached thread."""
        roles_known = True
        if roles is None:
            roles, roles_known = await self._roles_without_member(guild, user)
        if channel is None:
            try:
                channel = await self._parent(channel_id)
            except LookupFailed:
                if self._policy.allowed_channels or self._policy.denied_channels:
                    return self._unverified(guild, user, "thread parent")
                channel = channel_id  # nothing is judged on it: the thread stands in
        return Asker(
            workspace=guild, channel=channel, user=user, roles=roles, roles_known=roles_known
        )

    async def of_dm_user(self, user: str) -> Asker | None:
        """The facts about ``user`` writing in a DM (see the module docstring)."""
        policy = self._policy
        if not (policy.allowed_workspaces or policy.allowed_roles) or (
            user in policy.allowed_users and not policy.allowed_workspaces
        ):
            return Asker(workspace="", channel="", user=user, direct=True)
        found: tuple[str, frozenset[str]] | None = None
        failed: str | None = None
        for guild in self._candidate_guilds():
            try:
                roles = await self._membership(guild, user)
            except LookupFailed:
                failed = failed or guild
                continue
            if roles is None:
                continue
            if not policy.allowed_roles or roles & policy.allowed_roles:
                return Asker(workspace=guild, channel="", user=user, roles=roles, direct=True)
            found = found or (guild, roles)
        if failed is not None:
            return self._unverified(failed, user, "guild membership", direct=True)
        if found is not None:
            return Asker(workspace=found[0], channel="", user=user, roles=found[1], direct=True)
        return Asker(workspace="", channel="", user=user, direct=True)

    def _candidate_guilds(self) -> list[str]:
        """The bot's guilds where a membership could admit a DM: those allowed, and (with
        a role list) those that have one of the roles."""
        policy = self._policy
        guilds = []
        for guild in sorted(self._client.guilds, key=lambda g: g.id):
            if policy.allowed_workspaces and str(guild.id) not in policy.allowed_workspaces:
                continue
            if policy.allowed_roles and not any(
                role.isdigit() and guild.get_role(int(role)) is not None
                for role in policy.allowed_roles
            ):
                continue
            guilds.append(str(guild.id))
        return guilds

    async def _roles_without_member(self, guild: str, user: str) -> tuple[frozenset[str], bool]:
        """Roles for a guild message that carried no member object: looked up when a
        role list needs them; (roles, known)."""
        if not self._policy.allowed_roles or user in self._policy.allowed_users:
            return frozenset(), True
        try:
            roles = await self._membership(guild, user)
        except LookupFailed:
            return frozenset(), False
        return roles or frozenset(), True

    def _unverified(
        self, guild: str, user: str, what: str, *, direct: bool = False
    ) -> Asker | None:
        log.warning("cannot look up the %s of user %s in guild %s", what, user, guild or "-")
        if not self._policy.needs_kind:
            return None  # an UNKNOWN asker would pass this policy: do not answer at all
        return Asker(
            workspace=guild,
            channel="",
            user=user,
            kind=UserKind.UNKNOWN,
            direct=direct,
            roles_known=False,
        )

    # -- look-ups, cached ---------------------------------------------------------

    async def _membership(self, guild: str, user: str) -> frozenset[str] | None:
        """The user's roles in ``guild`` (@everyone included); None: not a member."""
        return await self._members.get((guild, user), lambda: self._fetch_member(guild, user))

    async def _fetch_member(self, guild_id: str, user: str) -> frozenset[str] | None:
        guild = self._client.get_guild(int(guild_id))
        if guild is None:
            raise LookupFailed(f"guild {guild_id} is not cached")
        try:
            member = await asyncio.wait_for(guild.fetch_member(int(user)), LOOKUP_TIMEOUT)
        except discord.NotFound:
            return None  # 10007 Unknown Member: not in the guild
        except _FAILURES as exc:
            raise LookupFailed(type(exc).__name__) from exc
        return frozenset(str(role.id) for role in member.roles)

    async def _parent(self, thread: str) -> str:
        """The parent channel of a thread discord.py has not cached (a thread never
        moves, so it is cached for good)."""
        parent = await self._parents.get(thread, lambda: self._fetch_parent(thread))
        if parent is None:  # cannot happen: a failed look-up raises
            raise LookupFailed(f"no parent for thread {thread}")
        return parent

    async def _fetch_parent(self, thread: str) -> str:
        try:
            channel = await asyncio.wait_for(
                self._client.fetch_channel(int(thread)), LOOKUP_TIMEOUT
            )
        except _FAILURES as exc:
            raise LookupFailed(type(exc).__name__) from exc
        if isinstance(channel, discord.Thread):
            return str(channel.parent_id)
        return str(channel.id)
