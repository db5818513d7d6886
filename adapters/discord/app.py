"""The Discord adapter: a discord.py client that turns messages into core events.

The gateway listener parses, finds out who asks (``facts``: what the message
carries; a DM's guild membership or an uncached thread's parent is looked up,
cached, before the ordered step), then decides and queues the event with the
core with no Discord call in between, so questions queue in the order they were
delivered. A question the core refuses gets its notice as a reply (Discord has
no ephemeral messages outside interactions), or silence. The look-ups for the
answer (``names``, the thread so far) and opening the thread a mention starts
(``threads``) happen in ``prepare``, inside the turn, so a refused mention opens
no thread. What the bot answers in a channel follows its ``respond_to``
(``bridge.channels``; a thread follows its parent channel). Replies use
discord.py's REST client and its rate limiter, every REST call within the
process's budget (``budget``: Discord's global limit); every message goes out
with mentions off. Reactions on answers and ``/stop`` are ``steering``'s, the
slash commands ``commands``'.

Lifecycle (``gateway``): ``start`` logs in, connects (one connection per shard held,
with ``DISCORD_SHARD_COUNT``) and returns once the gateway is READY; ``stop`` ends the
gateway (no new questions) but keeps REST open for the answers still being delivered;
``close`` ends the rest, after ``Bridge.drain``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

import aiohttp
import discord
from discord import app_commands

from adapters.discord import budget, changes, inbound
from adapters.discord.commands import Commands
from adapters.discord.facts import AskerFacts, parent_channel
from adapters.discord.files import download
from adapters.discord.gateway import (
    connect,
    connected,
    disconnect,
    intents,
    make_client,
    partial_channel,
    point_at,
    shard_connected,
    start_error,
)
from adapters.discord.invite import INTENT_MISSING, message_content_granted
from adapters.discord.metered import meter
from adapters.discord.names import NameBook
from adapters.discord.place_names import PlaceNames
from adapters.discord.places import DM_PLACE, jump_url, place_name
from adapters.discord.reactions import reacted_channel
from adapters.discord.reply import MESSAGE_LIMIT, DiscordChannel, DiscordReply, nonce_base
from adapters.discord.settings import DiscordSettings
from adapters.discord.steering import Steering
from adapters.discord.text import readable, thread_name
from adapters.discord.threads import ReplyPlaces, Threads
from adapters.web import WebServer
from bridge.channels import RespondTo
from bridge.config import ConfigError
from bridge.errors import QuestionRefused
from bridge.events import FileRef, PlatformEvent, ThreadKey
from bridge.policy import Asker
from bridge.reply import Capabilities, Intake, SaveMessageIds

# What callers build a client with (``cli``, ``check``, tests).
__all__ = ["DiscordAdapter", "intents", "make_client", "point_at"]

log = logging.getLogger(__name__)


class DiscordAdapter:
    """``bridge.reply.Platform`` for Discord; registers itself with the core.
    ``places`` keeps where answers go when a thread could not be opened (the store)."""

    name = "discord"

    def __init__(
        self,
        bridge: Intake,
        settings: DiscordSettings,
        *,
        places: ReplyPlaces,
        web_server: WebServer | None = None,
        client: discord.Client | None = None,
    ) -> None:
        if settings.bot_token is None:
            raise ConfigError("DISCORD_BOT_TOKEN is not set")
        self._bridge = bridge
        self._settings = settings
        self._capabilities = Capabilities(
            max_message_length=MESSAGE_LIMIT, min_update_interval=settings.update_interval
        )
        self.client = client or make_client(
            intents(), shard_count=settings.shard_count, shard_ids=settings.shard_ids
        )
        meter(self.client)
        # Every REST call of the process within one budget (Discord's global limit);
        # outside the metering, so a skipped update is no call.
        budget.attach(self.client, budget.DiscordBudget(budget.Rates.shared_by(settings.replicas)))
        self.tree = app_commands.CommandTree(self.client)
        # knows_thread → decide → submit as one step, no Discord call inside: a follow-up
        # right after the mention that opened its thread sees that thread, and questions
        # queue in delivery order.
        self._order = asyncio.Lock()
        self._names = NameBook(self.client)
        self._place_names = PlaceNames(self.client)
        self._threads = Threads(self.client, places, self._names)
        # prepare() → reply() of one turn: the channel its answer goes to instead of
        # its thread (which could not be opened), as replies to the question.
        self._in_channel: dict[str, str] = {}
        self._gateway: asyncio.Task[None] | None = None
        self._accepting = False
        # CDN downloads: a session of their own (no bot token on a file link).
        self._downloads: aiohttp.ClientSession | None = None
        self._facts = AskerFacts(self.client, bridge.access)
        self._steering = Steering(
            bridge, self.client, self._facts, name_of=self._names.name_of, tell=self._tell_under
        )
        Commands(self.tree, bridge, self._facts, self._steering, self._order)

        async def on_message(message: discord.Message) -> None:
            await self._on_message(message)

        async def on_raw_reaction_add(payload: discord.RawReactionActionEvent) -> None:
            if self._accepting:
                await self._steering.on_reaction(payload)

        async def on_raw_reaction_remove(payload: discord.RawReactionActionEvent) -> None:
            if self._accepting:
                await self._steering.on_reaction(payload)

        async def on_raw_message_edit(payload: discord.RawMessageUpdateEvent) -> None:
            await self._on_edit(payload)

        async def on_raw_message_delete(payload: discord.RawMessageDeleteEvent) -> None:
            await self._on_delete(payload)

        self.client.event(on_message)
        self.client.event(on_raw_message_edit)
        self.client.event(on_raw_message_delete)
        self.client.event(on_raw_reaction_add)
        self.client.event(on_raw_reaction_remove)
        if web_server is not None:
            self.mount(web_server)
        bridge.register(self)

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def bot_id(self) -> int:
        if self.client.user is None:
            raise RuntimeError("DiscordAdapter.start() has not run yet")
        return self.client.user.id

    def mount(self, server: WebServer) -> None:
        """Add the readiness check ``discord``, and ``discord shard N`` for each shard
        this process holds (so ``/readyz`` names a shard whose connection is down)."""
        server.add_check("discord", self.ready)
        for shard in self._settings.held_shards or ():
            server.add_check(f"discord shard {shard}", functools.partial(self.shard_ready, shard))

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Log in and connect; returns once the gateway is READY. Raises ``ConfigError``
        with one line saying what to fix (token, intent, reachability)."""
        token = self._settings.bot_token
        if token is None:
            raise ConfigError("DISCORD_BOT_TOKEN is not set")
        point_at(self._settings)
        try:
            await self.client.login(token.get_secret_value())
            if not message_content_granted(self.client.application_flags):
                raise ConfigError(INTENT_MISSING)
            # From the first MESSAGE_CREATE on (they may come before READY).
            self._accepting = True
            self._gateway = await connect(self.client, self._settings)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await self.close()
            if isinstance(exc, ConfigError) or not isinstance(exc, Exception):
                raise  # already one line; or cancelled / interrupted
            raise start_error(exc, self._settings) from None
        try:
            await self.tree.sync()
        except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
            log.warning("cannot register the /new and /stop commands: %s", exc)
        log.info("Discord connected as %s (%s)", self.client.user, self.bot_id)

    async def stop(self) -> None:
        """No new questions from here on (the gateway closes); answers under way can
        still be delivered until ``close``."""
        self._accepting = False
        gateway, self._gateway = self._gateway, None
        await disconnect(self.client, gateway)

    async def close(self) -> None:
        """Everything, REST included (after ``Bridge.drain``)."""
        await self.stop()
        if not self.client.is_closed():
            await self.client.close()
        downloads, self._downloads = self._downloads, None
        if downloads is not None:
            await downloads.close()

    async def ready(self) -> bool:
        """Readiness: the gateway is connected (every shard this process holds, when
        sharded) and the bot is taking questions."""
        return self._accepting and connected(self.client)

    async def shard_ready(self, shard: int) -> bool:
        """Readiness of one shard this process holds: its connection is open."""
        return self._accepting and shard_connected(self.client, shard)

    # -- inbound ----------------------------------------------------------------

    async def _on_message(self, message: discord.Message) -> None:
        if not self._accepting or self.client.user is None:
            return
        parsed = inbound.from_message(message, self.bot_id)
        self._names.delivered(parsed, nickname=isinstance(message.author, discord.Member))
        key = inbound.thread_key(parsed)
        # Only what would be answered in a thread the bridge knows is worth judging:
        # channel chatter is ignored before any look-up.
        place = parent_channel(message.channel, parsed)
        respond_to = self._respond_to(parsed, place or "")
        if (
            key is None
            or not inbound.decide(parsed, known_thread=True, respond_to=respond_to).answer
        ):
            return
        try:
            asker = await self._facts.of_message(message, parsed)
            if asker is None:
                return  # cannot be verified (facts logged it): no answer, no notice
            notice = await self._queue(parsed, key, asker)
        except Exception:
            log.exception("could not queue Discord message %s", parsed.id)
            return
        if notice is not None:
            await self._tell(message, notice)

    async def _queue(
        self, parsed: inbound.DiscordMessage, key: ThreadKey, asker: Asker
    ) -> str | None:
        """Decide and submit in delivery order; what to tell the asker afterwards."""
        direct = parsed.kind is inbound.ChannelKind.DM
        # A thread's parent, as the facts found it (an uncached thread's was looked up).
        place = "" if direct else asker.channel or parsed.channel_id
        async with self._order:
            known = await self._bridge.knows_thread(key)
            respond_to = self._respond_to(parsed, place)
            decision = inbound.decide(parsed, known_thread=known, respond_to=respond_to)
            if not decision.answer:
                return None
            self._names.keep(parsed)
            try:
                await self._bridge.submit(
                    PlatformEvent(
                        event_id=parsed.delivery_id,
                        thread=key,
                        message_id=parsed.id,
                        author_id=parsed.author_id,
                        author_name="",  # prepare() fills it in, inside the turn
                        text=parsed.question,
                        order=inbound.order_of(parsed),
                        needs_context=decision.needs_context,
                        files=parsed.files,
                        place=place,
                        direct=direct,
                    ),
                    asker,
                )
            except QuestionRefused as refused:
                self._names.drop(parsed.id)
                return refused.notice
        return None

    async def _on_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        """A person edited a message: judged as the message would be (``respond_to``,
        access), in delivery order with questions; the core decides what it changes.
        A question stays one when the edit drops the mention (its thread is the bot's)."""
        edit_id = changes.edit_id(payload)
        if not self._accepting or self.client.user is None or edit_id is None:
            return
        message = payload.message
        parsed = inbound.from_message(message, self.bot_id)
        key = inbound.thread_key(parsed)
        if key is None or parsed.from_bot:
            return
        notice = None
        try:
            asker = await self._facts.of_message(message, parsed)
            if asker is None:
                return
            direct = parsed.kind is inbound.ChannelKind.DM
            place = "" if direct else asker.channel or parsed.channel_id
            async with self._order:
                known = await self._bridge.knows_thread(key)
                respond_to = self._respond_to(parsed, place)
                decision = inbound.decide(parsed, known_thread=known, respond_to=respond_to)
                # A question that opened its thread stays one without its mention.
                kept = known and respond_to != "off" and inbound.is_question(parsed)
                if not (decision.answer or kept):
                    return
                self._names.delivered(parsed, nickname=isinstance(message.author, discord.Member))
                self._names.keep(parsed)  # the edited text's names, for its turn
                event = PlatformEvent(
                    event_id=edit_id,
                    thread=key,
                    message_id=parsed.id,
                    author_id=parsed.author_id,
                    author_name="",
                    text=parsed.question,
                    order=inbound.order_of(parsed),
                    needs_context=decision.needs_context,
                    files=parsed.files,
                    place=place,
                    direct=direct,
                )
                try:
                    await self._bridge.edit(event, asker)
                except QuestionRefused as refused:
                    notice = refused.notice
        except Exception:
            log.exception("could not take the edit of Discord message %s", parsed.id)
            return
        if notice is not None:
            await self._tell(message, notice)

    async def _on_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        """A person deleted a message: a question still queued is not answered."""
        if not self._accepting:
            return
        cached = payload.cached_message
        if cached is not None and cached.author.bot:
            return  # the bridge's own parts are its reply's business
        channel, message = str(payload.channel_id), str(payload.message_id)
        guild = str(payload.guild_id) if payload.guild_id else ""
        # The message opened its own thread (a mention in a channel), or sits in a
        # thread / DM whose conversation is keyed by the channel.
        keys = [ThreadKey(inbound.PLATFORM, guild, channel, channel)]
        if guild:
            keys.insert(0, ThreadKey(inbound.PLATFORM, guild, message, message))
        async with self._order:
            for key in keys:
                try:
                    if await self._bridge.retract(key, message):
                        return
                except Exception:
                    log.exception("could not take the deletion of Discord message %s", message)
                    return

    def _respond_to(self, parsed: inbound.DiscordMessage, place: str) -> RespondTo:
        """The ``respond_to`` of the message's channel (a thread's parent); DMs follow
        ``BRIDGE_ALLOW_DMS`` instead. An uncached thread's parent is not known yet:
        "mentions" until the facts find it."""
        if parsed.kind is inbound.ChannelKind.DM or not place:
            return "mentions"
        return self._bridge.rules(place).respond_to

    async def _tell(self, message: discord.Message, text: str) -> None:
        """A short reply to the asker's message, pinging no one (the author included)."""
        guild = str(message.guild.id) if message.guild is not None else ""
        await self._tell_under(str(message.channel.id), guild, str(message.id), text)

    async def _tell_under(self, channel_id: str, guild_id: str, message_id: str, text: str) -> None:
        """A short reply under a message, pinging no one (its author included)."""
        channel = partial_channel(self.client, channel_id, guild_id)
        try:
            await channel.send(
                text,
                reference=channel.get_partial_message(int(message_id)).to_reference(
                    fail_if_not_exists=False
                ),
                allowed_mentions=discord.AllowedMentions.none(),
                mention_author=False,
            )
        except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("cannot reply to message %s: %s", message_id, type(exc).__name__)

    # -- one turn ---------------------------------------------------------------------

    async def download(self, file: FileRef) -> AsyncIterator[bytes]:
        """``file``'s bytes from Discord's CDN as they arrive (``adapters.discord.files``)."""
        if self._downloads is None or self._downloads.closed:
            self._downloads = aiohttp.ClientSession()
        async for chunk in download(self._downloads, file):
            yield chunk

    async def prepare(self, event: PlatformEvent) -> PlatformEvent:
        """Names, readable text, the thread a mention opens, the thread so far, and
        where the conversation lives (``place_name``, ``link``). An event that already
        has its author's name was prepared before."""
        if event.edits:
            # An edited question: its thread exists; names as the edit delivered them.
            asker = await self._names.of_question(replace(event, message_id=event.asked_in))
            return await self._placed(
                replace(
                    event,
                    author_name=asker.author_name or event.author_id,
                    text=readable(event.text, asker.names),
                )
            )
        if event.regenerates:
            # The question is in the chat already: only who asked it, if still known.
            seen = self._names.seen(inbound.question_message(event))
            author = event.author_name or (seen.author_name if seen else "")
            return await self._placed(replace(event, author_name=author))
        if event.author_name:
            return await self._placed(event)
        seen = await self._names.of_question(event)
        await self._threads.open(event, thread_name(event.text, seen.names))
        context = event.context
        if event.needs_context and not context:
            context = await self._threads.context(event, self.bot_id)
        return await self._placed(
            replace(
                event,
                author_name=seen.author_name or event.author_id,
                text=readable(event.text, seen.names),
                context=context,
            )
        )

    async def _placed(self, event: PlatformEvent) -> PlatformEvent:
        """``event`` with its place as people know it and a link to its thread (or to
        the question, when its answers go to the channel): names from discord.py's
        cache, or Discord's REST API for a server on a shard another process holds."""
        key = event.thread
        if event.direct or not key.workspace:
            return replace(event, place_name=DM_PLACE, link=jump_url("", key.channel))
        guild_name = await self._place_names.guild(key.workspace)
        channel_name = await self._place_names.channel(event.channel)
        in_channel = await self._threads.answered_in(key)
        if in_channel is None:
            link = jump_url(key.workspace, key.channel)
        else:
            link = jump_url(key.workspace, in_channel, key.thread)  # the question
            if inbound.thread_to_open(event) is not None or event.edits:
                # The question that started it (a regenerate finds its answer itself).
                self._in_channel[key.thread] = in_channel
        return replace(event, place_name=place_name(guild_name, channel_name), link=link)

    def reply(
        self, event: PlatformEvent, message_ids: Sequence[str], save_ids: SaveMessageIds
    ) -> DiscordReply:
        target = self._in_channel.pop(event.thread.thread, None)
        reply_to = inbound.question_message(event) if target is not None else None
        if event.regenerates:
            # Where the replaced answer is: its thread, or the channel it could not be
            # opened in (then new parts reply to the question, as the first answer's did).
            target = reacted_channel(event.event_id)
            if target is not None and target != event.thread.channel:
                reply_to = inbound.question_message(event)
        channel = partial_channel(
            self.client, target or event.thread.channel, event.thread.workspace
        )
        return DiscordReply(
            DiscordChannel(channel, reply_to=reply_to),
            message_ids,
            save_ids,
            nonce_base=nonce_base(event.message_id),
            # A regenerate (or an edited question) shows the new answer in the old
            # answer's messages.
            replacing=bool(event.regenerates or event.edits),
        )
