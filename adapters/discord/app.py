"""The Discord adapter: a discord.py client that turns messages into core events.

The gateway listener parses, finds out who asks (``facts``: what the message
carries; a DM's guild membership or an uncached thread's parent is looked up,
cached, before the ordered step), then decides and queues the event with the
core with no Discord call in between, so questions queue in the order they were
delivered. A question the core refuses gets its notice as a reply (Discord has
no ephemeral messages outside interactions), or silence. The look-ups for the
answer (names, the thread so far) and opening the thread a mention starts
happen in ``prepare``, inside the turn, so a refused mention opens no thread.
What the bot answers in a channel follows its ``respond_to`` (``bridge.channels``;
a thread follows its parent channel). Replies use discord.py's REST client and
its rate limiter; every message goes out with mentions off. Reactions on
answers and ``/stop`` are ``steering``'s.

Lifecycle: ``start`` logs in, connects and returns once the gateway is READY
(the client keeps the gateway, reconnecting and resuming, in the background);
``stop`` ends the gateway (no new questions) but keeps REST open for the answers
still being delivered; ``close`` ends the rest, after ``Bridge.drain``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.discord import inbound
from adapters.discord.facts import AskerFacts, parent_channel
from adapters.discord.invite import INTENT_FIX, INTENT_MISSING, message_content_granted
from adapters.discord.places import DM_PLACE, jump_url, place_name
from adapters.discord.reactions import reacted_channel
from adapters.discord.reply import MESSAGE_LIMIT, DiscordChannel, DiscordReply, nonce_base
from adapters.discord.settings import DiscordSettings
from adapters.discord.steering import Steering
from adapters.discord.text import Names, readable, thread_name
from adapters.web import WebServer
from bridge.admission import ATTACHMENTS_IGNORED
from bridge.channels import RespondTo
from bridge.config import ConfigError
from bridge.errors import QuestionRefused
from bridge.events import ContextMessage, PlatformEvent, ThreadKey
from bridge.policy import Asker, Refusal, judge
from bridge.reply import Capabilities, Intake, SaveMessageIds

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0  # seconds from login to READY before start-up gives up
CONTEXT_LIMIT = 100  # earlier thread messages read when the bot joins a thread
SEEN_CACHE_SIZE = 2000  # delivered messages whose names prepare() can use without a call
THREAD_ALREADY_EXISTS = 160004  # Discord's JSON error code
THREAD_ARCHIVE_MINUTES: Literal[1440] = 1440  # a day without messages hides the thread
NEW_DONE = "Done: your next message starts a new conversation."
NEW_IN_SERVER = (
    "In a server, mention me in a channel: each mention opens its own thread and conversation."
)
# /new answers for those who may not use the DM (an interaction must be answered).
NEW_DMS_OFF = "I don't answer direct messages, so there is no conversation to start over."
NEW_REFUSED = "Sorry, you don't have access to this assistant."
NEW_UNVERIFIED = "I couldn't confirm your access just now. Please try again in a minute."
TOKEN_REJECTED = "DISCORD_BOT_TOKEN was rejected by Discord; copy it again (Developer Portal → Bot)"


def point_at(settings: DiscordSettings) -> None:
    """Aim discord.py at the configured REST base and gateway (both process-wide in
    discord.py: one Discord configuration per process)."""
    Route.BASE = settings.api_url
    if settings.gateway_url:
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url)


def intents() -> discord.Intents:
    """Servers, their messages, DMs, message content (privileged), and reactions in
    servers and DMs (👍/👎, ⏹, 🔁 on answers). No members: a message carries its
    author's nickname and global name, an added reaction its member."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.dm_messages = True
    wanted.message_content = True
    wanted.guild_reactions = True
    wanted.dm_reactions = True
    return wanted


def make_client(intents: discord.Intents, *, guild_ready_timeout: float = 2.0) -> discord.Client:
    """The bot's client. ``guild_ready_timeout``: how long READY waits for servers to
    arrive (discord.py's default; tests shorten it)."""
    # The bot never joins voice: discord.py's start-up warnings about voice libraries
    # would only worry an operator.
    discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
    return discord.Client(
        intents=intents,
        guild_ready_timeout=guild_ready_timeout,
        allowed_mentions=discord.AllowedMentions.none(),
        max_messages=None,  # edits and deletions are not followed: no message cache
        chunk_guilds_at_startup=False,
        member_cache_flags=discord.MemberCacheFlags.none(),
    )


def start_error(exc: BaseException, settings: DiscordSettings) -> ConfigError:
    """One line for why the client could not start (never a close code alone)."""
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return ConfigError(INTENT_MISSING)
    if isinstance(exc, discord.ConnectionClosed):
        if exc.code == 4004:
            return ConfigError(TOKEN_REJECTED)
        if exc.code in (4013, 4014):
            return ConfigError(INTENT_MISSING)
        return ConfigError(f"Discord closed the gateway at start-up (code {exc.code})")
    if isinstance(exc, discord.LoginFailure):
        return ConfigError(TOKEN_REJECTED)
    if isinstance(exc, discord.HTTPException):
        return ConfigError(f"Discord at {settings.api_url} answered {exc.status}: {exc.text}")
    if isinstance(exc, discord.GatewayNotFound | aiohttp.ClientError | OSError | TimeoutError):
        where = settings.gateway_url or settings.api_url
        return ConfigError(f"cannot reach Discord at {where}: {type(exc).__name__}")
    return ConfigError(f"cannot connect to Discord: {type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class _Seen:
    """What a delivered message said about names, kept for its turn's ``prepare``."""

    author_name: str
    names: Names


class DiscordAdapter:
    """``bridge.reply.Platform`` for Discord; registers itself with the core."""

    name = "discord"

    def __init__(
        self,
        bridge: Intake,
        settings: DiscordSettings,
        *,
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
        self.client = client or make_client(intents())
        self.tree = app_commands.CommandTree(self.client)
        self._add_commands()
        # knows_thread → decide → submit as one step, no Discord call inside: a follow-up
        # right after the mention that opened its thread sees that thread, and questions
        # queue in delivery order.
        self._order = asyncio.Lock()
        self._seen: OrderedDict[str, _Seen] = OrderedDict()
        # Server nicknames by (guild, user): a message fetched over REST carries no member.
        self._nicks: OrderedDict[tuple[str, str], str] = OrderedDict()
        # Threads that could not be opened (permissions): their answer goes to the channel
        # the question was asked in, so the person sees it (or why it failed).
        self._unthreaded: dict[str, str] = {}
        self._gateway: asyncio.Task[None] | None = None
        self._accepting = False
        self._facts = AskerFacts(self.client, bridge.access)
        self._steering = Steering(
            bridge, self.client, self._facts, name_of=self._name_of, tell=self._tell_under
        )

        async def on_message(message: discord.Message) -> None:
            await self._on_message(message)

        async def on_raw_reaction_add(payload: discord.RawReactionActionEvent) -> None:
            if self._accepting:
                await self._steering.on_reaction(payload)

        async def on_raw_reaction_remove(payload: discord.RawReactionActionEvent) -> None:
            if self._accepting:
                await self._steering.on_reaction(payload)

        self.client.event(on_message)
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
        """Add the readiness check ``discord``."""
        server.add_check("discord", self.ready)

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
            await self._connect()
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

    async def _connect(self) -> None:
        self._gateway = asyncio.create_task(self.client.connect(reconnect=True))
        ready = asyncio.create_task(self.client.wait_until_ready())
        done, _ = await asyncio.wait(
            {self._gateway, ready}, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if ready in done:
            self._gateway.add_done_callback(_gateway_ended)
            return
        ready.cancel()
        if self._gateway in done:
            error = self._gateway.exception()
            raise error if error is not None else ConfigError("Discord closed the gateway")
        where = self._settings.gateway_url or "Discord's gateway"
        raise ConfigError(f"no READY from {where} within {START_TIMEOUT:.0f} s")

    async def stop(self) -> None:
        """No new questions from here on (the gateway closes); answers under way can
        still be delivered until ``close``."""
        self._accepting = False
        gateway, self._gateway = self._gateway, None
        if gateway is not None:
            gateway.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await gateway
        ws = self.client.ws
        if ws is not None and ws.open:
            with contextlib.suppress(Exception):
                await ws.close(code=1000)

    async def close(self) -> None:
        """Everything, REST included (after ``Bridge.drain``)."""
        await self.stop()
        if not self.client.is_closed():
            await self.client.close()

    async def ready(self) -> bool:
        """Readiness: the gateway is connected and the bot is taking questions."""
        ws = self.client.ws
        return (
            self._accepting
            and self.client.is_ready()
            and not self.client.is_closed()
            and ws is not None
            and ws.open
        )

    # -- inbound ----------------------------------------------------------------

    async def _on_message(self, message: discord.Message) -> None:
        if not self._accepting or self.client.user is None:
            return
        parsed = inbound.from_message(message, self.bot_id)
        if parsed.guild_id and isinstance(message.author, discord.Member):
            self._remember_nick(parsed.guild_id, parsed.author_id, parsed.author_name)
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
            self._remember(parsed)
            try:
                queued = await self._bridge.submit(
                    PlatformEvent(
                        event_id=parsed.delivery_id,
                        thread=key,
                        message_id=parsed.id,
                        author_id=parsed.author_id,
                        author_name="",  # prepare() fills it in, inside the turn
                        text=parsed.question,
                        order=inbound.order_of(parsed),
                        needs_context=decision.needs_context,
                        attachments=parsed.attachments,
                        place=place,
                        direct=direct,
                    ),
                    asker,
                )
            except QuestionRefused as refused:
                self._seen.pop(parsed.id, None)
                return refused.notice
        if queued is not None and parsed.attachments and parsed.question.strip():
            return ATTACHMENTS_IGNORED  # answered, but the files are not read
        return None

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
        channel = self._channel(channel_id, guild_id)
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

    def _remember(self, message: inbound.DiscordMessage) -> None:
        self._seen[message.id] = _Seen(message.author_name, message.names)
        self._seen.move_to_end(message.id)
        while len(self._seen) > SEEN_CACHE_SIZE:
            self._seen.popitem(last=False)

    def _remember_nick(self, guild_id: str, user_id: str, name: str) -> None:
        self._nicks[(guild_id, user_id)] = name
        self._nicks.move_to_end((guild_id, user_id))
        while len(self._nicks) > SEEN_CACHE_SIZE:
            self._nicks.popitem(last=False)

    async def _display_name(self, guild_id: str, user: discord.abc.User) -> str:
        """The name the server shows for ``user``: its nickname there when known (seen
        on the gateway, else looked up once), else the user's own display name."""
        if isinstance(user, discord.Member) or not guild_id or user.bot:
            return user.display_name
        known = self._nicks.get((guild_id, str(user.id)))
        if known is not None:
            return known
        guild = self.client.get_guild(int(guild_id))
        if guild is None:
            return user.display_name
        try:
            member = await guild.fetch_member(user.id)
        except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError):
            return user.display_name  # left the server, or Discord said no: not cached
        self._remember_nick(guild_id, str(user.id), member.display_name)
        return member.display_name

    async def _name_of(self, guild_id: str, user_id: str) -> str:
        """The name people see for ``user_id`` when no member object came with what they
        did (a reaction in a DM); the id when Discord cannot say."""
        known = self._nicks.get((guild_id, user_id)) if guild_id else None
        if known is not None:
            return known
        user = self.client.get_user(int(user_id))
        if user is None:
            try:
                user = await self.client.fetch_user(int(user_id))
            except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError):
                return user_id
        return await self._display_name(guild_id, user)

    async def prepare(self, event: PlatformEvent) -> PlatformEvent:
        """Names, readable text, the thread a mention opens, the thread so far, and
        where the conversation lives (``place_name``, ``link``). An event that already
        has its author's name was prepared before."""
        if event.regenerates:
            # The question is in the chat already: only who asked it, if still known.
            seen = self._seen.get(inbound.question_message(event))
            author = event.author_name or (seen.author_name if seen else "")
            return self._placed(replace(event, author_name=author))
        if event.author_name:
            return self._placed(event)
        seen = self._seen.get(event.message_id) or await self._look_up(event)
        opening = inbound.thread_to_open(event)
        if opening is not None:
            await self._open_thread(*opening, thread_name(event.text, seen.names))
        context = event.context
        if event.needs_context and not context:
            context = await self._context(event)
        return self._placed(
            replace(
                event,
                author_name=seen.author_name or event.author_id,
                text=readable(event.text, seen.names),
                context=context,
            )
        )

    def _placed(self, event: PlatformEvent) -> PlatformEvent:
        """``event`` with its place as people know it and a link to its thread, from
        discord.py's cache (ids where it has no name)."""
        key = event.thread
        if event.direct or not key.workspace:
            return replace(event, place_name=DM_PLACE, link=jump_url("", key.channel))
        guild = self.client.get_guild(int(key.workspace))
        channel = self.client.get_channel(int(event.channel))
        if isinstance(channel, discord.Thread) and channel.parent is not None:
            channel = channel.parent  # an event stored without its place
        guild_name = guild.name if guild is not None else key.workspace
        channel_name = getattr(channel, "name", None) or event.channel
        unthreaded = self._unthreaded.get(key.thread)
        link = (
            jump_url(key.workspace, unthreaded, key.thread)  # the question, in its channel
            if unthreaded is not None
            else jump_url(key.workspace, key.channel)
        )
        return replace(event, place_name=place_name(guild_name, channel_name), link=link)

    async def _look_up(self, event: PlatformEvent) -> _Seen:
        """Names from the message itself (after a restart the gateway's copy is gone)."""
        channel = self._channel(inbound.source_channel(event), event.thread.workspace)
        try:
            message = await channel.fetch_message(int(event.message_id))
        except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.info("cannot fetch message %s: %s", event.message_id, type(exc).__name__)
            return _Seen(event.author_id, Names())
        name = await self._display_name(event.thread.workspace, message.author)
        return _Seen(name, inbound.names_of(message))

    async def _open_thread(self, channel_id: str, message_id: str, name: str) -> None:
        """The public thread from the question's message (its id is the message's)."""
        try:
            await self.client.http.start_thread_with_message(
                int(channel_id),
                int(message_id),
                name=name,
                auto_archive_duration=THREAD_ARCHIVE_MINUTES,
            )
        except discord.HTTPException as exc:
            if exc.code == THREAD_ALREADY_EXISTS:
                return  # an earlier attempt of this turn opened it
            hint = " (the bot needs Create Public Threads there)" if exc.status == 403 else ""
            log.warning(
                "cannot open a thread from message %s in %s: %s %s%s; answering in the channel",
                message_id,
                channel_id,
                exc.status,
                exc.text,
                hint,
            )
            self._unthreaded[message_id] = channel_id
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("cannot open a thread from message %s: %s", message_id, type(exc).__name__)

    async def _context(self, event: PlatformEvent) -> tuple[ContextMessage, ...]:
        """The thread before ``event``, when the bot joins a thread it was not in."""
        thread_id = int(event.thread.channel)
        channel = self._channel(event.thread.channel, event.thread.workspace)
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
        except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("cannot read thread %s: %s", thread_id, type(exc).__name__)
        earlier = []
        for message in messages:
            mine = message.author.id == self.bot_id
            if not message.content.strip() or (
                message.type.value not in inbound.QUESTION_TYPES and not mine
            ):
                continue
            name = (
                "assistant"
                if mine
                else await self._display_name(event.thread.workspace, message.author)
            )
            text = readable(message.content, inbound.names_of(message))
            earlier.append(ContextMessage(name, text, from_bot=mine))
        return tuple(earlier)

    async def _starter(self, thread_id: int) -> discord.Message | None:
        """The message a thread was started from; it lives in the parent channel."""
        thread = self.client.get_channel(thread_id)
        if not isinstance(thread, discord.Thread) or thread.parent_id is None:
            return None
        parent = self._channel(str(thread.parent_id), str(thread.guild.id))
        try:
            return await parent.fetch_message(thread_id)
        except discord.HTTPException:
            return None  # a forum post's starter is in the thread; or it was deleted

    def _channel(self, channel_id: str, guild_id: str) -> discord.PartialMessageable:
        return self.client.get_partial_messageable(
            int(channel_id), guild_id=int(guild_id) if guild_id else None
        )

    # -- /new --------------------------------------------------------------------

    def _add_commands(self) -> None:
        @app_commands.command(name="new", description="Start a new conversation in this DM")
        @app_commands.allowed_contexts(guilds=False, dms=True, private_channels=False)
        async def new(interaction: discord.Interaction[discord.Client]) -> None:
            await answer_privately(interaction, lambda: self._new_conversation(interaction))

        @app_commands.command(name="stop", description="Stop the answer being written here")
        @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
        async def stop(interaction: discord.Interaction[discord.Client]) -> None:
            await answer_privately(interaction, lambda: self._steering.stop_command(interaction))

        self.tree.add_command(new)
        self.tree.add_command(stop)

    async def _new_conversation(self, interaction: discord.Interaction[discord.Client]) -> str:
        """Start a new conversation in the DM where ``/new`` was used; what to tell."""
        if interaction.guild_id is not None or interaction.channel_id is None:
            return NEW_IN_SERVER
        refusal = await self._new_refusal(str(interaction.user.id))
        if refusal is not None:
            return refusal
        channel = str(interaction.channel_id)
        async with self._order:  # between the questions before it and after it
            await self._bridge.start_over(ThreadKey(inbound.PLATFORM, "", channel, channel))
        return NEW_DONE

    async def _new_refusal(self, user: str) -> str | None:
        """Why ``user`` may not start over in a DM (the DM would not answer them)."""
        try:
            asker = await self._facts.of_dm_user(user)
        except Exception:
            log.exception("cannot check /new of user %s", user)
            return NEW_UNVERIFIED
        if asker is None:
            return NEW_UNVERIFIED
        refusal = judge(self._bridge.access, asker)
        if refusal is None:
            return None
        if refusal is Refusal.DIRECT:
            return NEW_DMS_OFF
        return NEW_UNVERIFIED if refusal is Refusal.UNVERIFIED else NEW_REFUSED

    # -- replies ------------------------------------------------------------------

    def reply(
        self, event: PlatformEvent, message_ids: Sequence[str], save_ids: SaveMessageIds
    ) -> DiscordReply:
        target = self._unthreaded.pop(event.thread.thread, None) or event.thread.channel
        if event.regenerates:
            # Where the replaced answer is (a thread, or the channel one could not be opened in).
            target = reacted_channel(event.event_id) or target
        channel = self._channel(target, event.thread.workspace)
        return DiscordReply(
            DiscordChannel(channel),
            message_ids,
            save_ids,
            nonce_base=nonce_base(event.message_id),
            # A regenerate shows the new answer in the old answer's messages.
            replacing=bool(event.regenerates),
        )


async def answer_privately(
    interaction: discord.Interaction[discord.Client], said: Callable[[], Awaitable[str]]
) -> None:
    """Answer a command only its user sees. Discord drops an interaction not answered
    within 3 s, and look-ups may take longer: acknowledge first, then say it."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    await interaction.edit_original_response(content=await said())


def _gateway_ended(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        fix = f" ({INTENT_FIX})" if isinstance(error, discord.PrivilegedIntentsRequired) else ""
        log.error("the Discord gateway stopped: %s%s", type(error).__name__, fix)
