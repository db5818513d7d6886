"""The thread a mention opens, and the thread so far when the bot joins late.

A mention in a server channel opens a public thread from the question's message
(named after the question; its id is the message's, so the conversation's key is
known before any call). When Discord will not open it (a missing permission such
as Create Public Threads, 50013; the network failing), the answer goes to the
channel instead, as a reply to the question, so the person sees it. That choice
is stored (``ReplyPlaces``) before anything is posted: a restart resuming the turn,
and the turns that redo it, answer there too, and never try the thread again. A
thread that already exists (160004: an earlier attempt of this turn opened it) is
where the answer goes.
"""

from __future__ import annotations

import logging
from typing import Literal, Protocol

import aiohttp
import discord

from adapters.discord import inbound
from adapters.discord.gateway import partial_channel
from adapters.discord.names import NameBook
from adapters.discord.text import readable
from bridge.events import ContextMessage, PlatformEvent, ThreadKey

log = logging.getLogger(__name__)

CONTEXT_LIMIT = 100  # earlier thread messages read when the bot joins a thread
THREAD_ALREADY_EXISTS = 160004  # Discord's JSON error code
THREAD_ARCHIVE_MINUTES: Literal[1440] = 1440  # a day without messages hides the thread

_FAILURES = (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError)


class ReplyPlaces(Protocol):
    """Where a conversation's answers go when not in its own thread (``bridge.store``)."""

    async def reply_channel(self, key: ThreadKey) -> str | None: ...

    async def set_reply_channel(self, key: ThreadKey, channel: str) -> None: ...


class Threads:
    """Opening threads and reading them, for one Discord client."""

    def __init__(self, client: discord.Client, places: ReplyPlaces, names: NameBook) -> None:
        self._client = client
        self._places = places
        self._names = names

    async def open(self, event: PlatformEvent, name: str) -> None:
        """The public thread ``event``'s question starts, unless it has one or its
        answers go to the channel; where it cannot be opened, they go there from now on."""
        opening = inbound.thread_to_open(event)
        if opening is None or await self._places.reply_channel(event.thread) is not None:
            return
        channel_id, message_id = opening
        try:
            await self._client.http.start_thread_with_message(
                int(channel_id),
                int(message_id),
                name=name,
                auto_archive_duration=THREAD_ARCHIVE_MINUTES,
            )
            return
        except discord.HTTPException as exc:
            if exc.code == THREAD_ALREADY_EXISTS:
                return  # an earlier attempt of this turn opened it
            hint = " (the bot needs Create Public Threads there)" if exc.status == 403 else ""
            why = f"{exc.status} {exc.text}{hint}"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            why = type(exc).__name__
        log.warning(
            "cannot open a thread from message %s in %s: %s; answering in the channel",
            message_id,
            channel_id,
            why,
        )
        await self._places.set_reply_channel(event.thread, channel_id)

    async def answered_in(self, key: ThreadKey) -> str | None:
        """The channel ``key``'s answers went to, replying to its question, because its
        thread could not be opened; None: the thread (or DM)."""
        if not key.workspace or key.channel != key.thread:
            return None  # a DM, or a thread that existed before the bot came
        return await self._places.reply_channel(key)

    async def context(self, event: PlatformEvent, bot_id: int) -> tuple[ContextMessage, ...]:
        """The thread before ``event``, when the bot joins a thread it was not in."""
        thread_id = int(event.thread.channel)
        guild = event.thread.workspace
        channel = partial_channel(self._client, event.thread.channel, guild)
        messages: list[discord.Message] = []
        try:
            async for message in channel.history(
                limit=CONTEXT_LIMIT, before=discord.Object(id=int(event.message_id))
            ):
                messages.append(message)
            messages.reverse()
            if not messages or messages[0].id != thread_id:
                starter = await self._starter(thread_id)
                if starter is not None:
                    messages.insert(0, starter)
        except _FAILURES as exc:
            log.warning("cannot read thread %s: %s", thread_id, type(exc).__name__)
        earlier = []
        for message in messages:
            mine = message.author.id == bot_id
            if not message.content.strip() or (
                message.type.value not in inbound.QUESTION_TYPES and not mine
            ):
                continue
            name = "assistant" if mine else await self._names.display_name(guild, message.author)
            text = readable(message.content, inbound.names_of(message))
            earlier.append(ContextMessage(name, text, from_bot=mine))
        return tuple(earlier)

    async def _starter(self, thread_id: int) -> discord.Message | None:
        """The message a thread was started from; it lives in the parent channel."""
        thread = self._client.get_channel(thread_id)
        if not isinstance(thread, discord.Thread) or thread.parent_id is None:
            return None
        parent = partial_channel(self._client, str(thread.parent_id), str(thread.guild.id))
        try:
            return await parent.fetch_message(thread_id)
        except discord.HTTPException:
            return None  # a forum post's starter is in the thread; or it was deleted
