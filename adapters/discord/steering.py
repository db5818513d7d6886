"""What people do to answers: reactions (rate, stop, regenerate) and ``/stop``.

A reaction is handled like a question in one respect: its person is judged by
the access policy (``AskerFacts``, ``bridge.policy.judge``), and a refused
person's reaction is ignored without a word. Reactions from bots (the bridge
included), on other people's messages, and with emoji that mean nothing here
cost no call. Votes are handled one at a time in delivery order, so 👍 then 👎
leaves 👎. Which answer a message holds, and whether it can be rated, stopped or
redone, is the core's business (``Intake.act``); a message that holds no answer
is ignored there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import aiohttp
import discord

from adapters.discord.facts import AskerFacts
from adapters.discord.inbound import PLATFORM
from adapters.discord.reactions import (
    VOTES,
    Reaction,
    from_raw,
    regenerate_event_id,
    worth_handling,
)
from bridge.actions import Act, Action, Reacted, act_of
from bridge.events import ThreadKey
from bridge.openwebui.organise import Rater
from bridge.policy import Asker, Refusal, judge
from bridge.reply import Intake

log = logging.getLogger(__name__)

STOPPED = "Stopped."
NOTHING_TO_STOP = "Nothing is being answered here."
STOP_REFUSED = "Sorry, you don't have access to this assistant."
STOP_UNVERIFIED = "I couldn't confirm your access just now. Please try again in a minute."
STOP_FAILED = "I couldn't stop it just now. Please try again."

_FAILURES = (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError)

NameOf = Callable[[str, str], Awaitable[str]]  # (guild, user) → the name people see
Tell = Callable[[str, str, str, str], Awaitable[None]]  # (channel, guild, message, text)


class Steering:
    """Reactions and ``/stop`` for one Discord client."""

    def __init__(
        self,
        bridge: Intake,
        client: discord.Client,
        facts: AskerFacts,
        *,
        name_of: NameOf,
        tell: Tell,
    ) -> None:
        self._bridge = bridge
        self._client = client
        self._facts = facts
        self._name_of = name_of
        self._tell = tell
        self._votes = asyncio.Lock()  # FIFO: votes land in the order they were delivered

    # -- reactions ------------------------------------------------------------------

    async def on_reaction(self, payload: discord.RawReactionActionEvent) -> None:
        """A reaction added or removed (raw: messages discord.py never cached too)."""
        me = self._client.user
        reaction = from_raw(payload)
        if me is None or reaction is None or not worth_handling(reaction, str(me.id)):
            return
        # Taken before any await: tasks start in delivery order, and the lock is fair.
        ordered = self._votes if reaction.action in VOTES else contextlib.nullcontext()
        async with ordered:
            try:
                await self._handle(reaction, payload.member)
            except Exception:
                log.exception("could not handle a reaction on message %s", reaction.message_id)

    async def _handle(self, reaction: Reaction, member: discord.Member | None) -> None:
        acting = act_of(reaction.action, reaction.added)
        if acting is None:
            return
        act, vote = acting
        asker = await self._facts.of_reaction(
            reaction.guild_id, reaction.channel_id, reaction.user_id, member
        )
        if asker is None:
            log.info("reaction by %s ignored: %s", reaction.user_id, Refusal.UNVERIFIED)
            return
        event_id = ""
        if act is Act.REGENERATE:
            version = await self._answer_version(reaction)
            if version is None:
                return
            event_id = regenerate_event_id(reaction, version)
        acted = await self._bridge.act(
            Action(
                act=act,
                platform=PLATFORM,
                message_id=reaction.message_id,
                person=Rater(PLATFORM, reaction.user_id, await self._name(reaction, member)),
                asker=asker,
                event_id=event_id,
                vote=vote,
            )
        )
        if acted.notice is not None:  # a refused 🔁, told to the reacting person
            await self._tell(
                reaction.channel_id, reaction.guild_id, reaction.message_id, acted.notice
            )

    async def _name(self, reaction: Reaction, member: discord.Member | None) -> str:
        if member is not None:
            return member.display_name
        if reaction.added and reaction.action in (Reacted.UP, Reacted.DOWN):
            return await self._name_of(reaction.guild_id, reaction.user_id)
        return reaction.user_id  # taking a vote back, ⏹ and 🔁 need no name

    async def _answer_version(self, reaction: Reaction) -> int | None:
        """When the reacted message last changed (ms): a regenerate edits it, so the next
        🔁 on it is a new request while a replayed one is not. None: it is gone."""
        channel = self._client.get_partial_messageable(
            int(reaction.channel_id),
            guild_id=int(reaction.guild_id) if reaction.guild_id else None,
        )
        try:
            message = await channel.fetch_message(int(reaction.message_id))
        except _FAILURES as exc:
            log.info("cannot read message %s: %s", reaction.message_id, type(exc).__name__)
            return None
        me = self._client.user
        if me is None or message.author.id != me.id:
            return None  # not one of the bot's messages: it holds no answer
        return int((message.edited_at or message.created_at).timestamp() * 1000)

    # -- /stop ------------------------------------------------------------------------

    async def stop_command(self, interaction: discord.Interaction[discord.Client]) -> str:
        """Stop the answer being written where ``/stop`` was used; what to tell the person."""
        key = conversation_of(interaction)
        if key is None:
            return NOTHING_TO_STOP
        refusal = await self._refusal(interaction, key)
        if refusal is not None:
            return refusal
        try:
            stopped = await self._bridge.stop(key)
        except Exception:  # the interaction must still be answered
            log.exception("cannot stop the answer in %s", key.thread)
            return STOP_FAILED
        if not stopped:
            return NOTHING_TO_STOP
        log.info("answer in %s stopped by %s (/stop)", key.thread, interaction.user.id)
        return STOPPED

    async def _refusal(
        self, interaction: discord.Interaction[discord.Client], key: ThreadKey
    ) -> str | None:
        user = interaction.user
        asker: Asker | None
        try:
            if key.workspace:
                asker = await self._facts.of_member(
                    key.workspace, interaction.channel, key.channel, user
                )
            else:
                asker = await self._facts.of_dm_user(str(user.id))
        except Exception:
            log.exception("cannot check /stop of user %s", user.id)
            return STOP_UNVERIFIED
        refusal = Refusal.UNVERIFIED if asker is None else judge(self._bridge.access, asker)
        if refusal is None:
            return None
        return STOP_UNVERIFIED if refusal is Refusal.UNVERIFIED else STOP_REFUSED


_THREADS = (
    discord.ChannelType.public_thread,
    discord.ChannelType.private_thread,
    discord.ChannelType.news_thread,
)


def conversation_of(interaction: discord.Interaction[discord.Client]) -> ThreadKey | None:
    """The conversation a command used in a thread or a DM belongs to; None elsewhere
    (a server channel holds no conversation of its own)."""
    channel_id = interaction.channel_id
    if channel_id is None:
        return None
    channel = str(channel_id)
    if interaction.guild_id is None:
        return ThreadKey(PLATFORM, "", channel, channel)
    if getattr(interaction.channel, "type", None) in _THREADS:
        return ThreadKey(PLATFORM, str(interaction.guild_id), channel, channel)
    return None
