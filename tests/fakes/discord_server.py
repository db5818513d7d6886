"""A local Discord-compatible server for tests: REST API v10 and the WebSocket gateway.

Point a real ``discord.Client`` at it and look at what a person would see with
``channel_view``. It runs in the test's own event loop::

    async with FakeDiscord() as fake:
        guild = fake.add_guild("Lab")
        general = fake.add_channel(guild, "general")
        ada = fake.add_user(name="ada", global_name="Ada")
        fake.add_member(guild, ada, nick="Ada L.")
        with point_discord_py_at(fake):
            client = discord.Client(intents=..., guild_ready_timeout=0.05)
            task = asyncio.create_task(client.start("any-token"))
            ...
            fake.user_says(general, ada, f"<@{BOT_USER_ID}> hello")

People act through helpers that store what they did and send the gateway event Discord
would: ``user_says`` (MESSAGE_CREATE), ``forum_post``, ``interaction`` (a slash command such
as ``/new`` or ``/stop``), ``react`` / ``unreact`` (MESSAGE_REACTION_ADD / _REMOVE, recorded
in ``reactions``; the Add Reactions permission is not checked), ``rename_channel``
(CHANNEL_UPDATE) and ``rename_guild`` (GUILD_UPDATE).

Files (``tests.fakes.discord_cdn``): ``user_says(files=[FakeFile(...)])`` attaches them, served
from signed links on this server (``cdn.expire_links()`` ages every link past its expiry); the
bot's multipart creates and edits store theirs, within ten files and the guild's
``set_attachment_size_limit`` (413, 40005); ``attached(message)`` is what a person sees on it.

Pointing discord.py 2.7.1 at the fake (read from client.py, gateway.py, http.py):

- REST: ``discord.http.Route.BASE = fake.api_url``. It is a class attribute read when each
  ``Route`` is built, so set it before ``login`` and restore it afterwards. Interaction
  callbacks and webhooks (``discord.webhook.async_``) use the same ``Route`` class.
- Gateway: ``discord.Client`` never calls ``GET /gateway/bot``; ``Client.connect`` passes no
  URL, so ``DiscordWebSocket.from_client`` uses the class attribute
  ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` (``wss://gateway.discord.gg/``). Set it
  to ``yarl.URL(fake.gateway_url)``. Resumes go to READY's ``resume_gateway_url`` (this
  server's ``gateway_url``), but an INVALID_SESSION (op 9, not resumable) resets the client to
  ``DEFAULT_GATEWAY``, so that attribute must stay patched for the whole run, not only for the
  first connection. Only ``AutoShardedClient`` (without ``shard_count``) asks
  ``/gateway/bot``. ``point_discord_py_at(fake)`` does both and restores them.
- Sharding (docs: Gateway, Sharding): ``GET /gateway/bot`` answers ``shards``
  (``recommended_shards``) and ``session_start_limit``; an IDENTIFY with ``shard: [id, count]``
  gets the guilds with ``(guild_id >> 22) % count == id`` only (in READY, GUILD_CREATE and
  every later event), DMs only on shard 0; a bad pair closes with 4010 (Invalid shard). A
  session without ``shard`` gets everything. ``shard_of(guild, count)`` is the formula,
  ``add_guild(on_shard=(id, count))`` a guild on that shard, ``connected_shards`` what is open.
- Entry point: ``await client.start(token)`` (= ``login`` + ``connect``) in a task; stop with
  ``await client.close()``. ``login`` calls ``GET /users/@me`` and
  ``GET /oauth2/applications/@me``, then ``setup_hook`` (sync a ``CommandTree`` there).
  ``start`` only returns when the connection ends, with an exception for fatal closes (4014
  becomes ``discord.errors.PrivilegedIntentsRequired``), so tests await the task to see it.
- ``on_ready`` fires ``guild_ready_timeout`` seconds (default 2.0) after the last
  GUILD_CREATE; pass e.g. ``guild_ready_timeout=0.05`` to ``discord.Client`` in tests.
- discord.py always asks for ``compress=zlib-stream`` (``zstd-stream`` if a zstd module is
  installed) but also accepts plain text frames; this server compresses with zlib-stream when
  asked (``zlib_stream``), else sends text.
- A 429 without a ``Via`` header is taken for a Cloudflare ban (HTTPException, no retry);
  with it discord.py sleeps ``retry_after`` and retries, up to 5 tries. 500/502/504 are
  retried too (sleep 1 + 2*try).

Behaviour taken from Discord's API docs is implemented with their error codes; choices not
confirmed against Discord are marked "unverified". Faults a test can switch on (all off by
default): ``rate_limit_next`` (429 with ``Via``), ``fail_next`` (any status/code), ``hold`` /
``release`` and ``delay`` (a REST call waits), ``reconnect`` (op 7), ``drop`` (socket cut),
``invalidate_session`` (op 9), ``gateway_open = False`` (new gateway connections refused),
``replay_last`` and ``resume_replays_delivered`` (a dispatch
delivered twice), ``ack_heartbeats = False`` (a zombie connection),
``message_content_allowed = False`` (IDENTIFY with the intent closes with 4014).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import fnmatch
import hashlib
import json
import math
import mimetypes
import re
import time
import uuid
import zlib
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import aiohttp
from aiohttp import web

from tests.fakes.discord_cdn import (
    DEFAULT_SIZE_LIMIT,
    MAX_FILES,
    Cdn,
    FakeFile,
    too_many_files,
)
from tests.fakes.gates import Gates
from tests.fakes.polling import wait_until

JSON = dict[str, Any]
Id = str | int

API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1_420_070_400_000
# The bot user and its application share one id, as for every application made since 2020.
BOT_USER_ID = "1301000000000000001"
APP_ID = BOT_USER_ID
BOT_NAME = "owui-bot"
MAX_CONTENT = 2000  # message content limit (docs: Create Message)
# Rate limits (docs: Rate Limits). Per-route numbers are not published; these are the
# docs' header example (X-RateLimit-Limit 5, X-RateLimit-Reset-After 1), per bucket and
# top-level resource (channel, guild, webhook + token). Global: 50 requests per second,
# interaction callbacks excepted.
ROUTE_LIMIT = 5
ROUTE_WINDOW = 1.0  # seconds
GLOBAL_LIMIT = 50
GLOBAL_WINDOW = 1.0
# enforce_nonce: "checked for uniqueness in the past few minutes" (docs: Create Message);
# five minutes here (unverified).
NONCE_WINDOW = 300.0
# Error 30046, "Maximum number of edits to messages older than 1 hour reached" (docs: JSON
# error codes). The cap is not published; the fake allows none (stricter, unverified).
OLD_MESSAGE_AGE = 3600.0

# Gateway intents (docs: Gateway Intents).
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
GUILD_MESSAGE_REACTIONS = 1 << 10
GUILD_MESSAGE_TYPING = 1 << 11
DIRECT_MESSAGES = 1 << 12
DIRECT_MESSAGE_REACTIONS = 1 << 13
DIRECT_MESSAGE_TYPING = 1 << 14
MESSAGE_CONTENT = 1 << 15
# Application flags (docs: Application Flags).
GATEWAY_PRESENCE = 1 << 12
GATEWAY_GUILD_MEMBERS = 1 << 14
# Note the order: the unlimited flag is the lower bit (docs, and discord.py's flags.py).
GATEWAY_MESSAGE_CONTENT = 1 << 18
GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 19
# Message flags.
EPHEMERAL = 1 << 6
LOADING = 1 << 7
# Channel types.
GUILD_TEXT = 0
DM = 1
PUBLIC_THREAD = 11
PRIVATE_THREAD = 12
GUILD_FORUM = 15
# @everyone's permissions in a new guild: view, send, history, threads, reactions, embeds,
# files, app commands; enough for the bot's own work.
DEFAULT_PERMISSIONS = (
    (1 << 6)  # ADD_REACTIONS
    | (1 << 10)  # VIEW_CHANNEL
    | (1 << 11)  # SEND_MESSAGES
    | (1 << 14)  # EMBED_LINKS
    | (1 << 15)  # ATTACH_FILES
    | (1 << 16)  # READ_MESSAGE_HISTORY
    | (1 << 31)  # USE_APPLICATION_COMMANDS
    | (1 << 35)  # CREATE_PUBLIC_THREADS
    | (1 << 38)  # SEND_MESSAGES_IN_THREADS
)
# Mention forms in content: @everyone/@here, users (<@id>, legacy <@!id>), roles (<@&id>).
_MENTION = re.compile(r"@everyone|@here|<@!?(\d+)>|<@&(\d+)>")


class Call(NamedTuple):
    """One REST call as the server saw it.

    ``path`` is concrete without the ``/api/v10`` prefix ("/channels/1/messages"); ``route``
    is discord.py's route template ("/channels/{channel_id}/messages"), so
    ``f"{method} {route}"`` equals discord.py's ``Route.key``. ``body`` is the JSON body (for
    multipart sends, the ``payload_json`` part), ``None`` when there was none. ``at`` is
    ``time.monotonic()`` on arrival.
    """

    method: str
    path: str
    route: str
    body: Any
    query: dict[str, str]
    at: float
    files: tuple[FakeFile, ...] = ()  # a multipart body's ``files[n]`` parts, in order

    @property
    def key(self) -> str:
        return f"{self.method} {self.route}"


class Typing(NamedTuple):
    channel: str
    at: float  # time.monotonic()


class ReactionEvent(NamedTuple):
    """A reaction a person added or removed (``FakeDiscord.react`` / ``unreact``)."""

    added: bool
    channel_id: str
    message_id: str
    user_id: str
    emoji: str
    at: float  # time.monotonic()


@dataclass
class Message:
    """One message as people in the channel see it (threads are channels of their own)."""

    id: str
    channel_id: str
    author_id: str
    content: str  # what is visible now
    type: int = 0
    webhook_id: str | None = None
    flags: int = 0
    ephemeral_to: str | None = None  # the one user who sees an ephemeral message
    deleted: bool = False
    mentions: list[str] = field(default_factory=list)  # user ids in the mentions array
    mention_roles: list[str] = field(default_factory=list)
    mention_everyone: bool = False
    reference: str | None = None  # the message this one replies to
    attachments: list[JSON] = field(default_factory=list)  # Discord attachment objects
    thread_id: str | None = None  # the thread started from this message
    interaction_id: str | None = None  # set on interaction responses
    nonce: str | int | None = None
    edited_at: float | None = None  # time.time() of the last edit
    created_at: float = 0.0  # time.time(); 0: the id's own time (``age`` moves it back)
    old_edits: int = 0  # edits made once the message was over an hour old
    # Every content this message has shown, oldest first (create, then each edit).
    versions: list[str] = field(default_factory=list)
    # The ``allowed_mentions`` each create/edit carried (None: the field was absent), in step
    # with ``versions``.
    allowed_mentions: list[JSON | None] = field(default_factory=list)
    # Unicode emoji → the users who reacted with it, in the order they did.
    reactions: dict[str, list[str]] = field(default_factory=dict)

    @property
    def by_bot(self) -> bool:
        return self.author_id == BOT_USER_ID

    @property
    def edits(self) -> int:
        return max(len(self.versions) - 1, 0)


@dataclass
class InteractionResponse:
    """A POST to /interactions/{id}/{token}/callback (``data`` as sent)."""

    interaction_id: str
    token: str
    type: int
    data: JSON
    at: float
    message_id: str | None = None  # the message it showed (types 4 and 5)


class DiscordError(Exception):
    """Raised inside handlers: answer ``status`` with Discord's ``{"code", "message"}``."""

    def __init__(self, status: int, code: int, message: str, errors: JSON | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> JSON:
        body: JSON = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


@dataclass
class _Guild:
    id: str
    name: str
    owner_id: str
    roles: dict[str, JSON] = field(default_factory=dict)
    members: dict[str, JSON] = field(default_factory=dict)  # user id: {nick, roles, joined_at}
    channels: list[str] = field(default_factory=list)  # ids, threads included
    # Bytes the files of one message may take (the guild's ``attachment_size_limit``).
    attachment_size_limit: int = DEFAULT_SIZE_LIMIT


@dataclass
class _Session:
    id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    frames: list[JSON] = field(default_factory=list)  # every dispatch, for RESUME
    conn: _Conn | None = None
    invalidated: bool = False

    def receives(self, guild_id: str | None) -> bool:
        """Whether this session gets the events of ``guild_id`` (None: not of a guild,
        e.g. a DM: shard 0 only)."""
        if self.shard is None:
            return True
        shard, count = self.shard
        return shard == (shard_of(guild_id, count) if guild_id is not None else 0)


def shard_of(guild_id: Id, count: int) -> int:
    """The shard of a guild's events among ``count`` (docs: Sharding)."""
    return (int(guild_id) >> 22) % count


class _Close(NamedTuple):
    code: int
    reason: str


@dataclass
class _Conn:
    """One gateway WebSocket; frames go out in order through ``outbox``."""

    ws: web.WebSocketResponse
    request: web.Request
    query: dict[str, str]
    compressor: Any  # zlib compress object for zlib-stream, else None
    outbox: asyncio.Queue[JSON | _Close] = field(default_factory=asyncio.Queue)
    session: _Session | None = None
    closing: bool = False

    def send(self, frame: JSON | _Close) -> None:
        if not self.closing:
            self.outbox.put_nowait(frame)
            if isinstance(frame, _Close):
                self.closing = True


class GatewayConnection(NamedTuple):
    """A gateway WebSocket the client opened; ``query`` as given (v, encoding, compress)."""

    query: dict[str, str]
    at: float


Handler = Callable[[Call, dict[str, str]], Awaitable[Any]]


class FakeDiscord:
    """Discord REST + gateway on 127.0.0.1, plus helpers to feed events and read results."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.rate_limited: list[Call] = []  # answered 429 (also in ``calls``)
        self.rate_limited_globally: list[Call] = []  # of those, for the global limit
        self.typing: list[Typing] = []
        self.reactions: list[ReactionEvent] = []  # people's reactions, added and removed
        self.interaction_responses: list[InteractionResponse] = []
        self.commands: list[JSON] = []  # global application commands now registered
        self.command_overwrites: list[list[JSON]] = []  # each bulk overwrite body, in order
        self.guild_commands: dict[str, list[JSON]] = {}
        self.users: dict[str, JSON] = {}
        self.channels: dict[str, JSON] = {}  # guild channels, threads and DMs by id
        self.gateway_connections: list[GatewayConnection] = []
        self.identifies: list[JSON] = []  # IDENTIFY payloads (token removed)
        self.resumes: list[JSON] = []  # RESUME payloads {session_id, seq} (token removed)
        self.heartbeats = 0
        self._gates: Gates[Call] = Gates()  # holds and delays, by route key
        self.held = self._gates.held  # calls waiting on a hold right now
        self.dropped: list[Call] = []  # held calls whose client left: never applied

        # Switches a test may flip.
        self.valid_tokens: set[str] | None = None  # None: any token is accepted
        self.message_content_allowed = True  # False: IDENTIFY with MESSAGE_CONTENT → 4014
        self.members_intent_allowed = True
        self.presences_intent_allowed = True
        # What /applications/@me reports as flags; None: derived from the switches above
        # (the *_LIMITED flags, as for an unverified app with the toggles on).
        self.application_flags: int | None = None
        self.application_name = "owui-bridge"
        self.heartbeat_interval_ms = 41_250  # what Discord sends in HELLO
        self.ack_heartbeats = True  # False: a zombie connection (no op 11)
        self.zlib_stream = True  # honour ?compress=zlib-stream as Discord does
        self.echo_bot_messages = True  # the bot's own sends/edits come back as dispatches
        # The next RESUME also replays this many dispatches the client already had, as a
        # resume from a stale sequence number would (Discord promises at-least-once).
        self.resume_replays_delivered = 0
        self.max_content = MAX_CONTENT
        # Rate limits enforced as Discord does (429 with retry_after and X-RateLimit-*);
        # False: never a 429 but those ``rate_limit_next`` asks for.
        self.enforce_rate_limits = True
        self.route_limit = ROUTE_LIMIT
        self.route_window = ROUTE_WINDOW
        self.global_limit = GLOBAL_LIMIT
        self.old_message_edits_allowed = 0  # edits of a message over an hour old (30046)
        # False: guild messages arrive without the author's ``member`` object (Discord
        # always sends it on MESSAGE_CREATE; for testing a client's fallback).
        self.message_members = True
        # What GET /gateway/bot recommends (docs: Get Gateway Bot) and allows at once.
        self.recommended_shards = 1
        self.max_concurrency = 1
        # False: the gateway refuses new connections (503), as when it cannot be reached.
        self.gateway_open = True

        self._guilds: dict[str, _Guild] = {}
        self._messages: dict[str, list[Message]] = defaultdict(list)
        self._sessions: dict[str, _Session] = {}
        self._conns: list[_Conn] = []
        self._interactions: dict[str, JSON] = {}  # token: INTERACTION_CREATE data
        self._answered: set[str] = set()  # interaction tokens already called back
        self._rate_limits: dict[str, deque[tuple[float, str]]] = defaultdict(deque)
        self._failures: dict[str, deque[tuple[int, int, str]]] = defaultdict(deque)
        self._cuts: dict[str, int] = defaultdict(int)  # calls to answer by cutting the line
        self._buckets: dict[tuple[str, ...], _Window] = {}
        self._global = _Window(0.0, 0)
        self._last_id = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.cdn = Cdn()  # attachment bytes and their signed links
        self.add_user(BOT_USER_ID, BOT_NAME, bot=True)

    # -- lifecycle ------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self) -> FakeDiscord:
        app = web.Application()
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/users/@me", self._get_me),
            ("GET", "/users/{user_id}", self._get_user),
            ("GET", "/gateway", self._get_gateway),
            ("GET", "/gateway/bot", self._get_gateway_bot),
            ("GET", "/oauth2/applications/@me", self._get_application),
            ("GET", "/applications/@me", self._get_application),
            ("GET", "/applications/{application_id}/commands", self._get_commands),
            ("PUT", "/applications/{application_id}/commands", self._put_commands),
            (
                "GET",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self._get_commands,
            ),
            (
                "PUT",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self._put_commands,
            ),
            (
                "POST",
                "/interactions/{webhook_id}/{webhook_token}/callback",
                self._interaction_callback,
            ),
            ("POST", "/webhooks/{webhook_id}/{webhook_token}", self._followup),
            (
                "GET",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                self._webhook_get,
            ),
            (
                "PATCH",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                self._webhook_edit,
            ),
            (
                "DELETE",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                self._webhook_delete,
            ),
            ("GET", "/guilds/{guild_id}", self._get_guild),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member),
            ("GET", "/channels/{channel_id}", self._get_channel),
            ("GET", "/channels/{channel_id}/messages", self._history),
            ("POST", "/channels/{channel_id}/messages", self._create_message),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self._edit_message),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self._delete_message),
            ("POST", "/channels/{channel_id}/typing", self._typing),
            (
                "POST",
                "/channels/{channel_id}/messages/{message_id}/threads",
                self._start_thread,
            ),
        ]
        for method, route, handler in routes:
            app.router.add_route(method, API_PREFIX + route, self._rest(route, handler))
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest("/{tail}", _not_found))
        app.router.add_get("/gateway", self._gateway)
        cdn_path = "/attachments/{channel_id}/{attachment_id}/{filename}"
        app.router.add_get(cdn_path, self.cdn.serve)
        app.router.add_get("/media" + cdn_path, self.cdn.serve)
        # A short shutdown timeout: open WebSockets must not hold stop() for a minute.
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.cdn.base_url = f"http://127.0.0.1:{self.port}"
        return self

    async def stop(self) -> None:
        self.release_all()
        for conn in list(self._conns):
            conn.send(_Close(1001, "server stopping"))
        await asyncio.sleep(0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for task in list(self._tasks):
            task.cancel()

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the world: users, guilds, channels -------------------------------------------

    def next_id(self) -> str:
        """A new snowflake: milliseconds since Discord's epoch, worker 1, process 1, counter."""
        value = ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (1 << 17) | (1 << 12)
        value = max(value, self._last_id + 1)
        self._last_id = value
        return str(value)

    def add_user(
        self,
        user_id: Id | None = None,
        name: str = "user",
        *,
        global_name: str | None = None,
        bot: bool = False,
    ) -> str:
        """Add a user (Discord's user object shape); returns its id.

        ``name`` is the unique username; ``global_name`` the display name people chose.
        """
        uid = str(user_id) if user_id is not None else self.next_id()
        user: JSON = {
            "id": uid,
            "username": name,
            "discriminator": "0",  # pomelo usernames: no discriminator
            "global_name": global_name,
            "avatar": None,
            "public_flags": 0,
            "flags": 0,
        }
        if bot:
            user["bot"] = True
        self.users[uid] = user
        return uid

    def add_guild(
        self,
        name: str = "Fake Guild",
        *,
        guild_id: Id | None = None,
        owner: Id | None = None,
        everyone_permissions: int = DEFAULT_PERMISSIONS,
        on_shard: tuple[int, int] | None = None,
    ) -> str:
        """Add a guild the bot is in (its @everyone role and the bot member included).
        ``on_shard=(shard_id, shard_count)``: an id whose events go to that shard."""
        gid = str(guild_id) if guild_id is not None else self.next_id()
        if on_shard is not None:
            gid = self._id_on_shard(*on_shard)
        owner_id = str(owner) if owner is not None else self.add_user(name="owner")
        guild = _Guild(id=gid, name=name, owner_id=owner_id)
        self._guilds[gid] = guild
        # @everyone has the guild's id.
        self.add_role(gid, gid, "@everyone", permissions=everyone_permissions, position=0)
        self.add_member(gid, BOT_USER_ID)
        if owner_id in self.users:
            self.add_member(gid, owner_id)
        return gid

    def _id_on_shard(self, shard: int, count: int) -> str:
        value = int(self.next_id())
        while shard_of(value, count) != shard:
            value += 1 << 22  # one millisecond later
        self._last_id = max(self._last_id, value)
        return str(value)

    def add_role(
        self,
        guild: Id,
        role_id: Id | None = None,
        name: str = "role",
        *,
        permissions: int = 0,
        position: int | None = None,
    ) -> str:
        g = self._guild(guild)
        rid = str(role_id) if role_id is not None else self.next_id()
        g.roles[rid] = {
            "id": rid,
            "name": name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": position if position is not None else len(g.roles),
            "permissions": str(permissions),
            "managed": False,
            "mentionable": True,
            "flags": 0,
        }
        # Connected clients learn of a new role as from Discord (the GUILDS intent).
        self._dispatch("GUILD_ROLE_CREATE", {"guild_id": g.id, "role": g.roles[rid]}, intent=GUILDS)
        return rid

    def add_member(
        self, guild: Id, user: Id, *, nick: str | None = None, roles: list[Id] | None = None
    ) -> None:
        g = self._guild(guild)
        uid = str(user)
        if uid not in self.users:
            raise KeyError(f"FakeDiscord: unknown user {uid}; add_user first")
        g.members[uid] = {
            "nick": nick,
            "roles": [str(r) for r in roles or []],
            "joined_at": _iso(time.time()),
        }

    def set_roles(self, guild: Id, user: Id, roles: list[Id]) -> None:
        """Give a member exactly ``roles``. Discord tells bots with the members intent
        (GUILD_MEMBER_UPDATE); later messages carry the new roles either way."""
        g = self._guild(guild)
        uid = str(user)
        if uid not in g.members:
            raise KeyError(f"FakeDiscord: {uid} is not a member of {g.id}")
        g.members[uid]["roles"] = [str(r) for r in roles]
        data = {"guild_id": g.id, **self._member_shape(g.id, uid, with_user=True)}
        self._dispatch("GUILD_MEMBER_UPDATE", data, intent=GUILD_MEMBERS)

    def remove_member(self, guild: Id, user: Id) -> None:
        """The user leaves the guild (GET member answers 404 Unknown Member from now on)."""
        g = self._guild(guild)
        if g.members.pop(str(user), None) is not None:
            data = {"guild_id": g.id, "user": self._user(str(user))}
            self._dispatch("GUILD_MEMBER_REMOVE", data, intent=GUILD_MEMBERS)

    def add_channel(
        self,
        guild: Id,
        name: str,
        *,
        channel_id: Id | None = None,
        type: int = GUILD_TEXT,
        parent_id: Id | None = None,
    ) -> str:
        """Add a guild channel (text by default; ``type=GUILD_FORUM`` for a forum)."""
        g = self._guild(guild)
        cid = str(channel_id) if channel_id is not None else self.next_id()
        channel: JSON = {
            "id": cid,
            "type": type,
            "guild_id": g.id,
            "name": name,
            "position": len(g.channels),
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": str(parent_id) if parent_id is not None else None,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "default_auto_archive_duration": 1440,
            "flags": 0,
        }
        if type == GUILD_FORUM:
            channel.update(
                available_tags=[],
                default_reaction_emoji=None,
                default_sort_order=None,
                default_forum_layout=0,
                default_thread_rate_limit_per_user=0,
            )
        self.channels[cid] = channel
        g.channels.append(cid)
        return cid

    def add_thread(
        self,
        parent: Id,
        name: str,
        *,
        owner: Id | None = None,
        thread_id: Id | None = None,
        private: bool = False,
    ) -> str:
        """Add an existing thread under a text or forum channel (no dispatch)."""
        parent_channel = self._channel(str(parent))
        g = self._guild(parent_channel["guild_id"])
        tid = str(thread_id) if thread_id is not None else self.next_id()
        self.channels[tid] = self._thread_shape(
            tid, parent_channel, name, str(owner or BOT_USER_ID), private=private
        )
        g.channels.append(tid)
        return tid

    def add_dm(self, user: Id, *, channel_id: Id | None = None) -> str:
        """The DM channel between ``user`` and the bot (created once); returns its id."""
        uid = str(user)
        for cid, channel in self.channels.items():
            if channel["type"] == DM and channel["recipients"][0]["id"] == uid:
                return cid
        cid = str(channel_id) if channel_id is not None else self.next_id()
        self.channels[cid] = {
            "id": cid,
            "type": DM,
            "last_message_id": None,
            "recipients": [self._user(uid)],
            "flags": 0,
        }
        return cid

    def guild_of(self, channel: Id) -> str | None:
        return self.channels.get(str(channel), {}).get("guild_id")

    def rename_channel(self, channel: Id, name: str) -> None:
        """Rename a server channel (or thread): CHANNEL_UPDATE (THREAD_UPDATE) with the
        whole channel, as Discord sends it, so clients' caches see the new name."""
        shape = self._channel(str(channel))
        if shape["type"] == DM:
            raise ValueError("FakeDiscord: a DM has no name")
        shape["name"] = name
        event = "THREAD_UPDATE" if shape["type"] in (PUBLIC_THREAD, PRIVATE_THREAD) else None
        self._dispatch(event or "CHANNEL_UPDATE", copy.deepcopy(shape), intent=GUILDS)

    def rename_guild(self, guild: Id, name: str) -> None:
        """Rename a server: GUILD_UPDATE (the guild without members or channels)."""
        g = self._guild(guild)
        g.name = name
        self._dispatch("GUILD_UPDATE", self._guild_shape(g, full=False), intent=GUILDS)

    # -- faults -----------------------------------------------------------------

    def rate_limit_next(
        self,
        route_key: str,
        retry_after: float = 1.0,
        *,
        times: int = 1,
        scope: Literal["user", "global"] = "user",
    ) -> None:
        """Answer the next ``times`` calls of ``route_key`` with 429 (``Via`` set); with
        ``scope="global"`` as the global limit's (``"global": true``).

        ``route_key`` is discord.py's ``Route.key`` ("PATCH
        /channels/{channel_id}/messages/{message_id}") or a concrete "METHOD /path".
        """
        self._rate_limits[route_key].extend([(retry_after, scope)] * times)

    def fail_next(
        self,
        route_key: str,
        status: int,
        code: int = 0,
        message: str = "fake failure",
        *,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``route_key`` with ``status`` and Discord's body.

        discord.py retries 500/502/504/524 by itself (up to five tries).
        """
        self._failures[route_key].extend([(status, code, message)] * times)

    def cut_next(self, route_key: str, *, times: int = 1) -> None:
        """Close the connection of the next ``times`` calls of ``route_key`` without an
        answer and without applying them: a network error, as the client sees it."""
        self._cuts[route_key] += times

    def age(self, message_id: Id, seconds: float) -> None:
        """Make a message ``seconds`` older (its nonce and edit limits follow)."""
        message = self.message(message_id)
        if message is None:
            raise KeyError(f"FakeDiscord: unknown message {message_id}")
        message.created_at = self._created(message) - seconds

    def hold(self, route_key: str, when: Callable[[Call], object] | None = None) -> None:
        """Make calls of ``route_key`` (those ``when`` accepts) wait for ``release``.

        A held call whose HTTP client went away meanwhile is never applied: it lands in
        ``dropped``, which is how the last call of a killed process looks to Discord.
        """
        self._gates.hold(route_key, when)

    def release(self, route_key: str) -> None:
        self._gates.release(route_key)

    def release_all(self) -> None:
        self._gates.release_all()

    def delay(
        self, route_key: str, seconds: float, when: Callable[[Call], object] | None = None
    ) -> None:
        """Make calls of ``route_key`` wait ``seconds``; ``delay(key, 0)`` clears them."""
        self._gates.delay(route_key, seconds, when)

    # -- what happened ----------------------------------------------------------

    def calls_of(self, method: str, path_pattern: str = "*") -> list[Call]:
        """Calls of ``method`` whose route template equals ``path_pattern`` or whose concrete
        path matches it as a glob ("/channels/*/messages/*")."""
        return [
            c
            for c in self.calls
            if c.method == method.upper()
            and (c.route == path_pattern or fnmatch.fnmatchcase(c.path, path_pattern))
        ]

    def message(self, message_id: Id) -> Message | None:
        mid = str(message_id)
        for messages in self._messages.values():
            for message in messages:
                if message.id == mid:
                    return message
        return None

    def channel_view(self, channel: Id, *, as_user: Id | None = None) -> list[Message]:
        """The messages a person in the channel sees, oldest first, deleted ones left out.

        Ephemeral messages are shown only when ``as_user`` is the user they were sent to.
        """
        viewer = str(as_user) if as_user is not None else None
        return sorted(
            (
                m
                for m in self._messages[str(channel)]
                if not m.deleted and (m.ephemeral_to is None or m.ephemeral_to == viewer)
            ),
            key=lambda m: int(m.id),
        )

    def attached(self, message: Message) -> list[tuple[str, bytes]]:
        """The files a person sees on ``message``: (file name, bytes), in order."""
        return [(a["filename"], self.cdn.data(a["id"])) for a in message.attachments]

    def set_attachment_size_limit(self, guild: Id, size: int) -> None:
        """The bytes one message's files may take in ``guild`` (10 MiB unboosted)."""
        self._guild(str(guild)).attachment_size_limit = size

    def bot_messages(self, channel: Id, *, as_user: Id | None = None) -> list[Message]:
        return [m for m in self.channel_view(channel, as_user=as_user) if m.by_bot]

    def replies_to(self, message_id: Id) -> list[Message]:
        """The bot's visible replies (``message_reference``) to ``message_id``, oldest first."""
        mid = str(message_id)
        return sorted(
            (
                m
                for messages in self._messages.values()
                for m in messages
                if m.by_bot and m.reference == mid and not m.deleted
            ),
            key=lambda m: int(m.id),
        )

    def typing_in(self, channel: Id) -> list[float]:
        """When the bot sent typing in ``channel`` (``time.monotonic()`` values)."""
        return [t.at for t in self.typing if t.channel == str(channel)]

    def threads(self, parent: Id | None = None) -> list[JSON]:
        return [
            c
            for c in self.channels.values()
            if c["type"] in (PUBLIC_THREAD, PRIVATE_THREAD)
            and (parent is None or c["parent_id"] == str(parent))
        ]

    def pings(self, channel: Id) -> list[tuple[Message, str]]:
        """The bot's messages in ``channel`` that notified someone, with the form found.

        Looks at every version with the ``allowed_mentions`` it was sent with; absent means
        Discord's default (everything in the content may ping).
        """
        found: list[tuple[Message, str]] = []
        for message in self._messages[str(channel)]:
            if not message.by_bot:
                continue
            forms: set[str] = set()
            for text, allowed in zip(message.versions, message.allowed_mentions, strict=True):
                forms.update(_pinging_forms(text, allowed))
            found.extend((message, form) for form in sorted(forms))
        return found

    async def wait_for(
        self, predicate: Callable[[], object], *, timeout: float = 5.0, what: str = "condition"
    ) -> None:
        """Poll ``predicate`` until truthy; the client reacts to dispatches asynchronously."""
        await wait_until(predicate, timeout=timeout, what=what, who="FakeDiscord")

    async def wait_for_session(self, count: int = 1, *, timeout: float = 5.0) -> None:
        """Wait until ``count`` IDENTIFYs were answered with READY."""
        await self.wait_for(
            lambda: len(self._sessions) >= count, timeout=timeout, what=f"{count} session(s)"
        )

    # -- feeding events -----------------------------------------------------------

    def user_says(
        self,
        channel: Id,
        user: Id,
        content: str,
        *,
        mentions_bot: bool | None = None,
        reply_to: Id | None = None,
        webhook: bool = False,
        type: int | None = None,
        flags: int = 0,
        message_id: Id | None = None,
        attachments: int = 0,
        files: Sequence[FakeFile] = (),
    ) -> Message:
        """A person (or bot, or webhook) posts ``content``: store it, dispatch MESSAGE_CREATE.

        Mentions are parsed from the content like Discord does (``<@id>``, ``<@!id>``,
        ``<@&id>``, ``@everyone``). ``mentions_bot=True`` puts the bot in ``mentions`` even
        without ``<@BOT_USER_ID>`` in the text (a reply that pings), ``False`` keeps it out.
        ``webhook=True`` posts as a webhook (``webhook_id`` set, no member). ``attachments``
        files (small text files) come with it, and ``files`` as given (served by ``cdn``,
        read back with ``attached``). Nothing is delivered when no client is
        connected, as with Discord. Guild messages carry the author's ``member`` (nick,
        roles) as Discord's do.
        """
        cid = str(channel)
        self._channel(cid)
        uid = str(user)
        self._user(uid)
        users, roles, everyone = _parse_mentions(content)
        if mentions_bot is True and BOT_USER_ID not in users:
            users.append(BOT_USER_ID)
        if mentions_bot is False and BOT_USER_ID in users:
            users.remove(BOT_USER_ID)
        message = Message(
            id=self._claim_id(message_id),
            channel_id=cid,
            author_id=uid,
            content=content,
            type=type if type is not None else (19 if reply_to is not None else 0),
            webhook_id=self.next_id() if webhook else None,
            flags=flags,
            mentions=[u for u in users if u in self.users],
            mention_roles=roles,
            mention_everyone=everyone,
            reference=str(reply_to) if reply_to is not None else None,
        )
        message.attachments = [self._attachment(cid, i) for i in range(attachments)] + [
            self.cdn.store(self.next_id(), cid, f.name, f.data, f.content_type) for f in files
        ]
        self._store(message, None)
        self._dispatch_message("MESSAGE_CREATE", message)
        return message

    def forum_post(self, forum: Id, user: Id, title: str, content: str) -> tuple[str, Message]:
        """A person opens a forum post: the thread and its first message share one id."""
        forum_channel = self._channel(str(forum))
        tid = self.next_id()
        thread = self._thread_shape(tid, forum_channel, title, str(user), private=False)
        self.channels[tid] = thread
        self._guild(forum_channel["guild_id"]).channels.append(tid)
        self._dispatch_guild("THREAD_CREATE", {**thread, "newly_created": True}, GUILDS)
        return tid, self.user_says(tid, user, content, message_id=tid)

    def delete(self, message_id: Id) -> None:
        """A person (the author, or a moderator) deletes a message: MESSAGE_DELETE."""
        message = self.message(message_id)
        if message is None:
            raise KeyError(f"FakeDiscord: unknown message {message_id}")
        self._deleted(message)

    def user_edits(self, message_id: Id, content: str) -> Message:
        """The author edits their message to ``content``: MESSAGE_UPDATE with the whole
        message, as Discord sends it (new content, mentions parsed again, and
        ``edited_timestamp``)."""
        message = self.message(message_id)
        if message is None or message.deleted:
            raise KeyError(f"FakeDiscord: no message {message_id}")
        users, roles, everyone = _parse_mentions(content)
        message.content = content
        message.mentions = [u for u in users if u in self.users]
        message.mention_roles = roles
        message.mention_everyone = everyone
        message.edited_at = time.time()
        message.versions.append(content)
        self._dispatch_message("MESSAGE_UPDATE", message)
        return message

    def embeds_resolved(self, message_id: Id) -> None:
        """Discord resolves a link in a message into a preview: MESSAGE_UPDATE with the
        embeds, the text and ``edited_timestamp`` as they were."""
        message = self.message(message_id)
        if message is None or message.deleted:
            raise KeyError(f"FakeDiscord: no message {message_id}")
        shape = self._message_shape(message, gateway=True)
        shape["embeds"] = [{"type": "link", "url": "https://example.com", "title": "Example"}]
        guild_id = self.guild_of(message.channel_id)
        self._dispatch(
            "MESSAGE_UPDATE", shape, intent=GUILD_MESSAGES if guild_id else DIRECT_MESSAGES
        )

    def react(self, message_id: Id, user: Id, emoji: str) -> ReactionEvent:
        """``user`` adds the unicode ``emoji`` to a message: MESSAGE_REACTION_ADD (with
        the member in a server, and the message's author, as Discord sends them).
        Adding a reaction one already has changes nothing and sends nothing."""
        return self._reaction(message_id, user, emoji, added=True)

    def unreact(self, message_id: Id, user: Id, emoji: str) -> ReactionEvent:
        """``user`` takes their ``emoji`` off a message: MESSAGE_REACTION_REMOVE (no
        member, no author, as Discord sends it)."""
        return self._reaction(message_id, user, emoji, added=False)

    def _reaction(self, message_id: Id, user: Id, emoji: str, *, added: bool) -> ReactionEvent:
        message = self.message(message_id)
        if message is None or message.deleted:
            raise KeyError(f"FakeDiscord: no message {message_id}")
        uid = str(user)
        self._user(uid)
        event = ReactionEvent(added, message.channel_id, message.id, uid, emoji, time.monotonic())
        users = message.reactions.setdefault(emoji, [])
        if (uid in users) == added:
            return event  # Discord: nothing changes, nothing is dispatched
        if added:
            users.append(uid)
        else:
            users.remove(uid)
            if not users:
                del message.reactions[emoji]
        self.reactions.append(event)
        guild_id = self.guild_of(message.channel_id)
        # type 0: a normal reaction (1 is a burst, "super", reaction).
        data: JSON = {
            "user_id": uid,
            "channel_id": message.channel_id,
            "message_id": message.id,
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "type": 0,
        }
        if guild_id is not None:
            data["guild_id"] = guild_id
        if added:
            data["message_author_id"] = message.author_id
            data["burst_colors"] = []
            if guild_id is not None:
                data["member"] = self._member_shape(guild_id, uid, with_user=True)
        self._dispatch(
            "MESSAGE_REACTION_ADD" if added else "MESSAGE_REACTION_REMOVE",
            data,
            intent=GUILD_MESSAGE_REACTIONS if guild_id is not None else DIRECT_MESSAGE_REACTIONS,
        )
        return event

    def interaction(
        self,
        user: Id,
        command_name: str,
        channel: Id,
        *,
        options: list[JSON] | None = None,
    ) -> JSON:
        """A person runs ``/command_name`` in ``channel``: dispatch INTERACTION_CREATE (type 2).

        Returns the interaction payload; its ``token`` names the callback.
        """
        cid = str(channel)
        channel_shape = self._channel(cid)
        uid = str(user)
        guild_id = channel_shape.get("guild_id")
        registered = self.commands + (self.guild_commands.get(guild_id, []) if guild_id else [])
        command_id = next(
            (c["id"] for c in registered if c["name"] == command_name), self.next_id()
        )
        data: JSON = {"id": command_id, "name": command_name, "type": 1}
        if options:
            data["options"] = options
        token = "aW50ZXJhY3Rpb246" + uuid.uuid4().hex  # opaque, like Discord's
        interaction: JSON = {
            "id": self.next_id(),
            "application_id": APP_ID,
            "type": 2,
            "token": token,
            "version": 1,
            "data": data,
            "channel_id": cid,
            "channel": copy.deepcopy(channel_shape),
            "locale": "en-US",
            "app_permissions": str(DEFAULT_PERMISSIONS),
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if guild_id is not None:
            interaction.update(
                guild_id=guild_id,
                guild={"id": guild_id, "locale": "en-US", "features": []},
                guild_locale="en-US",
                member=self._member_shape(guild_id, uid, with_user=True),
                authorizing_integration_owners={"0": guild_id},
                context=0,
            )
        else:
            interaction.update(
                user=self._user(uid), authorizing_integration_owners={"1": uid}, context=1
            )
        self._interactions[token] = interaction
        # Interactions need no intent.
        self._dispatch("INTERACTION_CREATE", interaction, intent=0)
        return interaction

    def dispatch(self, event: str, data: JSON, *, intent: int = 0) -> None:
        """Send any dispatch to every connected session (``intent``: needed intent bit)."""
        self._dispatch(event, data, intent=intent)

    def replay_last(self, n: int = 1, *, event: str | None = "MESSAGE_CREATE") -> int:
        """Deliver the last ``n`` dispatches (of ``event``; None: any) again, unchanged.

        This is what a resume from a stale sequence number delivers: the same frames, the
        same ``s``. Returns how many frames were sent.
        """
        sent = 0
        for conn in self._live_conns():
            session = conn.session
            if session is None:
                continue
            frames = [f for f in session.frames if event is None or f["t"] == event]
            for frame in frames[-n:]:
                conn.send(frame)
                sent += 1
        return sent

    def reconnect(self) -> None:
        """Send op 7 RECONNECT on every connection: the client reconnects and resumes."""
        for conn in self._live_conns():
            conn.send({"op": 7, "d": None})

    def drop(self, *, shard: int | None = None) -> None:
        """Cut every gateway connection (or only those of ``shard``) without a close
        frame; the client resumes."""
        for conn in list(self._conns):
            held = conn.session.shard if conn.session is not None else None
            if shard is not None and (held is None or held[0] != shard):
                continue
            conn.closing = True
            transport = conn.request.transport
            if transport is not None:
                transport.abort()

    def close_gateway(self, code: int, reason: str = "") -> None:
        """Close every gateway connection with ``code`` (e.g. 4000: client resumes)."""
        for conn in list(self._conns):
            conn.send(_Close(code, reason))

    def invalidate_session(self, *, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION; not resumable: the session is gone, the client
        IDENTIFYs again (at ``DEFAULT_GATEWAY``)."""
        for conn in self._live_conns():
            if not resumable and conn.session is not None:
                conn.session.invalidated = True
            conn.send({"op": 9, "d": resumable})

    # -- REST plumbing -----------------------------------------------------------

    def _rest(
        self, route: str, handler: Handler
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            body, files = await _read_body(request)
            path = request.path.removeprefix(API_PREFIX)
            call = Call(
                request.method, path, route, body, dict(request.query), time.monotonic(), files
            )
            self.calls.append(call)
            keys = (call.key, f"{call.method} {call.path}")
            if not await self._pass_gates(call, keys, request):
                self.dropped.append(call)
                return _json_response({"message": "client gone", "code": 0}, status=499)
            for key in keys:
                if self._cuts.get(key):
                    self._cuts[key] -= 1
                    self.dropped.append(call)
                    if request.transport is not None:
                        request.transport.close()
                    return web.Response(status=499)
            for key in keys:
                if self._rate_limits[key]:
                    self.rate_limited.append(call)
                    retry_after, scope = self._rate_limits[key].popleft()
                    if scope == "global":
                        self.rate_limited_globally.append(call)
                    return self._too_many(call, retry_after, scope=scope)
            limited = self._take_from_buckets(call)
            if limited is not None:
                self.rate_limited.append(call)
                return limited
            for key in keys:
                if self._failures[key]:
                    status, code, message = self._failures[key].popleft()
                    return self._json(call, {"message": message, "code": code}, status)
            try:
                if not route.startswith("/interactions/") and not route.startswith("/webhooks/"):
                    self._check_auth(request)
                result = await handler(call, dict(request.match_info))
            except DiscordError as exc:
                return self._json(call, exc.body(), exc.status)
            if result is None:
                return web.Response(status=204, headers=self._bucket_headers(call))
            return self._json(call, result, 200)

        return serve

    async def _pass_gates(self, call: Call, keys: tuple[str, ...], request: web.Request) -> bool:
        """Apply delays and holds; False if the client left while the call waited."""
        try:
            if not await self._gates.pass_through(keys, call):
                return True
        except asyncio.CancelledError:
            self.dropped.append(call)
            raise
        transport = request.transport
        return transport is not None and not transport.is_closing()

    def _check_auth(self, request: web.Request) -> None:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bot ").strip()
        if not token or (self.valid_tokens is not None and token not in self.valid_tokens):
            raise DiscordError(401, 0, "401: Unauthorized")

    def _take_from_buckets(self, call: Call) -> web.Response | None:
        """Count ``call`` against the global limit and its route's bucket; the 429
        Discord would answer once either is spent, else None."""
        if not self.enforce_rate_limits:
            return None
        now = time.monotonic()
        if not call.route.startswith("/interactions/"):
            if self._global.spent(now, self.global_limit, GLOBAL_WINDOW):
                self.rate_limited_globally.append(call)
                return self._too_many(call, self._global.reset_at - now, scope="global")
        window = self._buckets.setdefault(_bucket_of(call), _Window(0.0, 0))
        if window.spent(now, self.route_limit, self.route_window):
            return self._too_many(call, window.reset_at - now)
        return None

    def _bucket_headers(self, call: Call, *, remaining: int | None = None) -> dict[str, str]:
        """The X-RateLimit-* headers Discord sends with every answer of a limited route."""
        bucket = hashlib.sha1(call.key.encode()).hexdigest()[:32]
        window = self._buckets.get(_bucket_of(call))
        now = time.monotonic()
        if window is None or now >= window.reset_at:
            left, after = self.route_limit - 1, self.route_window
        else:
            left, after = self.route_limit - window.used, window.reset_at - now
        if remaining is not None:
            left = remaining
        return {
            "X-RateLimit-Bucket": bucket,
            "X-RateLimit-Limit": str(self.route_limit),
            "X-RateLimit-Remaining": str(max(left, 0)),
            "X-RateLimit-Reset": f"{time.time() + after:.3f}",
            "X-RateLimit-Reset-After": f"{after:.3f}",
        }

    def _json(self, call: Call, body: Any, status: int) -> web.Response:
        return _json_response(body, status=status, headers=self._bucket_headers(call))

    def _too_many(self, call: Call, retry_after: float, *, scope: str = "user") -> web.Response:
        headers = self._bucket_headers(call, remaining=0)
        if scope == "global":
            headers = {"X-RateLimit-Global": "true"}
        headers.update(
            {
                "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
                "X-RateLimit-Scope": scope,
                "Retry-After": str(math.ceil(retry_after)),
                # Discord's API sits behind Google's front end; discord.py treats a 429
                # without Via as a Cloudflare ban and gives up.
                "Via": "1.1 google",
            }
        )
        body = {
            "message": "You are being rate limited.",
            "retry_after": round(retry_after, 3),
            "global": scope == "global",
        }
        return _json_response(body, status=429, headers=headers)

    # -- REST handlers -------------------------------------------------------------

    async def _get_me(self, call: Call, match: dict[str, str]) -> JSON:
        return {
            **self._user(BOT_USER_ID),
            "verified": True,
            "mfa_enabled": False,
            "locale": "en-US",
        }

    async def _get_user(self, call: Call, match: dict[str, str]) -> JSON:
        user = self.users.get(match["user_id"])
        if user is None:
            raise DiscordError(404, 10013, "Unknown User")
        return user

    async def _get_gateway(self, call: Call, match: dict[str, str]) -> JSON:
        return {"url": self.gateway_url}

    async def _get_gateway_bot(self, call: Call, match: dict[str, str]) -> JSON:
        return {
            "url": self.gateway_url,
            "shards": self.recommended_shards,
            "session_start_limit": {
                "total": 1000,
                "remaining": 1000 - len(self.identifies),
                "reset_after": 86_400_000,
                "max_concurrency": self.max_concurrency,
            },
        }

    def app_flags(self) -> int:
        if self.application_flags is not None:
            return self.application_flags
        flags = 0
        if self.message_content_allowed:
            flags |= GATEWAY_MESSAGE_CONTENT_LIMITED
        if self.members_intent_allowed:
            flags |= 1 << 15  # GATEWAY_GUILD_MEMBERS_LIMITED
        if self.presences_intent_allowed:
            flags |= 1 << 13  # GATEWAY_PRESENCE_LIMITED
        return flags

    async def _get_application(self, call: Call, match: dict[str, str]) -> JSON:
        owner = self._user(self._guild_owner_or_bot())
        return {
            "id": APP_ID,
            "name": self.application_name,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": owner,
            "team": None,
            "flags": self.app_flags(),
            "bot": self._user(BOT_USER_ID),
            "rpc_origins": [],
            "tags": [],
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "approximate_guild_count": len(self._guilds),
            "integration_types_config": {"0": {}},
        }

    async def _get_commands(self, call: Call, match: dict[str, str]) -> list[JSON]:
        if "guild_id" in match:
            return self.guild_commands.get(match["guild_id"], [])
        return self.commands

    async def _put_commands(self, call: Call, match: dict[str, str]) -> list[JSON]:
        if match["application_id"] != APP_ID:
            raise DiscordError(403, 50035, "Invalid Form Body")
        body = call.body if isinstance(call.body, list) else []
        guild_id = match.get("guild_id")
        old = self.guild_commands.get(guild_id, []) if guild_id else self.commands
        old_ids = {(c["name"], c.get("type", 1)): c["id"] for c in old}
        registered: list[JSON] = []
        for command in body:
            kind = command.get("type", 1)
            registered.append(
                {
                    "options": [],
                    "default_member_permissions": None,
                    "dm_permission": True,
                    "nsfw": False,
                    **command,
                    "type": kind,
                    # Discord keeps a command's id across overwrites (matched by name, type).
                    "id": old_ids.get((command["name"], kind)) or self.next_id(),
                    "application_id": APP_ID,
                    "version": self.next_id(),
                    **({"guild_id": guild_id} if guild_id else {}),
                }
            )
        if guild_id:
            self.guild_commands[guild_id] = registered
        else:
            self.commands = registered
            self.command_overwrites.append(body)
        return registered

    async def _interaction_callback(self, call: Call, match: dict[str, str]) -> JSON | None:
        token = match["webhook_token"]
        interaction = self._interactions.get(token)
        if interaction is None or interaction["id"] != match["webhook_id"]:
            raise DiscordError(404, 10062, "Unknown interaction")
        if token in self._answered:
            raise DiscordError(400, 40060, "Interaction has already been acknowledged.")
        self._answered.add(token)
        body = call.body if isinstance(call.body, dict) else {}
        kind = int(body.get("type", 0))
        data = body.get("data") or {}
        response = InteractionResponse(match["webhook_id"], token, kind, data, call.at)
        self.interaction_responses.append(response)
        message: Message | None = None
        if kind in (4, 5):  # CHANNEL_MESSAGE_WITH_SOURCE, DEFERRED_CHANNEL_MESSAGE
            message = self._interaction_message(interaction, data, loading=kind == 5)
            response.message_id = message.id
        if call.query.get("with_response") not in ("1", "true", "True"):
            return None
        result: JSON = {
            "interaction": {
                "id": interaction["id"],
                "type": interaction["type"],
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(message and message.ephemeral_to),
            }
        }
        if message is not None:
            result["interaction"]["response_message_id"] = message.id
            result["resource"] = {"type": kind, "message": self._message_shape(message)}
        else:
            result["resource"] = {"type": kind}
        return result

    def _interaction_message(self, interaction: JSON, data: JSON, *, loading: bool) -> Message:
        content = "" if loading else str(data.get("content") or "")
        if not loading:  # a deferred response shows "thinking…" until edited
            self._check_content(content, data, creating=True)
        flags = int(data.get("flags") or 0)
        user = interaction.get("member", {}).get("user") or interaction.get("user") or {}
        message = Message(
            id=self.next_id(),
            channel_id=interaction["channel_id"],
            author_id=BOT_USER_ID,
            content=content,
            type=20,  # CHAT_INPUT_COMMAND
            flags=(flags & EPHEMERAL) | (LOADING if loading else 0),
            ephemeral_to=str(user.get("id")) if flags & EPHEMERAL else None,
            interaction_id=interaction["id"],
        )
        self._store(message, data.get("allowed_mentions"))
        if not message.ephemeral_to:
            self._dispatch_message("MESSAGE_CREATE", message)
        return message

    def _webhook_interaction(self, match: dict[str, str]) -> JSON:
        interaction = self._interactions.get(match["webhook_token"])
        if interaction is None or match["webhook_id"] != APP_ID:
            raise DiscordError(404, 10015, "Unknown Webhook")
        return interaction

    def interaction_said(self) -> list[str]:
        """What each answered interaction shows its user now (a deferred one once its
        text has replaced "thinking…")."""
        said = []
        for response in self.interaction_responses:
            message = self.message(response.message_id) if response.message_id else None
            if message is not None and not message.flags & LOADING:
                said.append(message.content)
        return said

    def _original(self, interaction: JSON, message_id: str) -> Message:
        if message_id == "@original":
            found = next(
                (
                    r.message_id
                    for r in self.interaction_responses
                    if r.token == interaction["token"] and r.message_id
                ),
                None,
            )
            message = self.message(found) if found else None
        else:
            message = self.message(message_id)
        if message is None or message.deleted or message.interaction_id != interaction["id"]:
            raise DiscordError(404, 10008, "Unknown Message")
        return message

    async def _followup(self, call: Call, match: dict[str, str]) -> JSON:
        interaction = self._webhook_interaction(match)
        data = call.body if isinstance(call.body, dict) else {}
        return self._message_shape(self._interaction_message(interaction, data, loading=False))

    async def _webhook_get(self, call: Call, match: dict[str, str]) -> JSON:
        interaction = self._webhook_interaction(match)
        return self._message_shape(self._original(interaction, match["message_id"]))

    async def _webhook_edit(self, call: Call, match: dict[str, str]) -> JSON:
        interaction = self._webhook_interaction(match)
        message = self._original(interaction, match["message_id"])
        message.flags &= ~LOADING
        return self._message_shape(self._edit(message, call.body))

    async def _webhook_delete(self, call: Call, match: dict[str, str]) -> None:
        interaction = self._webhook_interaction(match)
        self._original(interaction, match["message_id"]).deleted = True

    async def _get_guild(self, call: Call, match: dict[str, str]) -> JSON:
        return self._guild_shape(self._guild(match["guild_id"]), full=False)

    async def _get_member(self, call: Call, match: dict[str, str]) -> JSON:
        g = self._guild(match["guild_id"])
        if match["user_id"] not in g.members:
            raise DiscordError(404, 10007, "Unknown Member")
        return self._member_shape(g.id, match["user_id"], with_user=True)

    async def _get_channel(self, call: Call, match: dict[str, str]) -> JSON:
        return self._channel(match["channel_id"])

    async def _history(self, call: Call, match: dict[str, str]) -> list[JSON]:
        cid = match["channel_id"]
        self._channel(cid)
        limit = max(1, min(100, int(call.query.get("limit", "50"))))
        visible = self.channel_view(cid)
        if "after" in call.query:
            after = int(call.query["after"])
            # The oldest `limit` after the anchor, returned newest first (as Discord does).
            page = [m for m in visible if int(m.id) > after][:limit]
        else:
            before = int(call.query.get("before", str(1 << 63)))
            page = [m for m in visible if int(m.id) < before][-limit:]
        return [self._message_shape(m) for m in reversed(page)]

    async def _create_message(self, call: Call, match: dict[str, str]) -> JSON:
        cid = match["channel_id"]
        channel = self._channel(cid)
        body = call.body if isinstance(call.body, dict) else {}
        content = str(body.get("content") or "")
        nonce = body.get("nonce")
        if body.get("enforce_nonce") and nonce is not None:
            # Discord: a nonce this author used in the past few minutes returns that
            # message and creates none; a message deleted since counts too (unverified).
            for earlier in self._messages[cid]:
                if (
                    earlier.author_id == BOT_USER_ID
                    and earlier.nonce == nonce
                    and time.time() - self._created(earlier) < NONCE_WINDOW
                ):
                    return self._message_shape(earlier)
        self._check_content(content, body, creating=True)
        reference = body.get("message_reference") or {}
        message = Message(
            id=self.next_id(),
            channel_id=cid,
            author_id=BOT_USER_ID,
            content=content,
            type=19 if reference.get("message_id") else 0,
            flags=int(body.get("flags") or 0),
            reference=str(reference["message_id"]) if reference.get("message_id") else None,
            nonce=body.get("nonce"),
        )
        if channel["type"] in (PUBLIC_THREAD, PRIVATE_THREAD) and channel["thread_metadata"].get(
            "locked"
        ):
            raise DiscordError(403, 50083, "Thread is archived")
        message.mentions, message.mention_roles, message.mention_everyone = _pinged(
            content, body.get("allowed_mentions")
        )
        message.attachments = self._uploaded(cid, [], body, call.files)
        self._store(message, body.get("allowed_mentions"))
        self._dispatch_message("MESSAGE_CREATE", message)
        return self._message_shape(message)

    async def _get_message(self, call: Call, match: dict[str, str]) -> JSON:
        return self._message_shape(self._find(match["channel_id"], match["message_id"]))

    async def _edit_message(self, call: Call, match: dict[str, str]) -> JSON:
        message = self._find(match["channel_id"], match["message_id"])
        if not message.by_bot:
            raise DiscordError(403, 50005, "Cannot edit a message authored by another user")
        if time.time() - self._created(message) > OLD_MESSAGE_AGE:
            if message.old_edits >= self.old_message_edits_allowed:
                raise DiscordError(
                    400,
                    30046,
                    "Maximum number of edits to messages older than 1 hour reached. "
                    "Try again later",
                )
            message.old_edits += 1
        if call.files or (isinstance(call.body, dict) and "attachments" in call.body):
            body = call.body if isinstance(call.body, dict) else {}
            kept = self._uploaded(message.channel_id, message.attachments, body, call.files)
            kept_ids = {a["id"] for a in kept}
            self.cdn.forget([a["id"] for a in message.attachments if a["id"] not in kept_ids])
            message.attachments = kept
        return self._message_shape(self._edit(message, call.body))

    def _uploaded(
        self, channel_id: str, existing: list[JSON], body: JSON, files: Sequence[FakeFile]
    ) -> list[JSON]:
        """A message's attachments after a create or edit: the existing ones the body's
        ``attachments`` lists (all of them when it has none: new files are added, as the
        docs say of edits) and the uploaded ``files[n]``, named as ``attachments`` names
        them. Over ``MAX_FILES`` or the guild's size limit: Discord's errors, nothing kept."""
        listed = body.get("attachments")
        if isinstance(listed, list):
            wanted = {str(a.get("id")) for a in listed if isinstance(a, dict)}
            kept = [a for a in existing if str(a["id"]) in wanted]
            named = {str(a.get("id")): a for a in listed if isinstance(a, dict)}
        else:
            kept, named = list(existing), {}
        if len(kept) + len(files) > MAX_FILES:
            raise DiscordError(400, 50035, "Invalid Form Body", too_many_files())
        guild_id = self.guild_of(channel_id)
        limit = self._guild(guild_id).attachment_size_limit if guild_id else DEFAULT_SIZE_LIMIT
        if sum(len(f.data) for f in files) > limit:
            raise DiscordError(413, 40005, "Request entity too large")
        added: list[JSON] = []
        for n, f in enumerate(files):
            entry = named.get(str(n), {})
            stored = self.cdn.store(
                self.next_id(),
                channel_id,
                str(entry.get("filename") or f.name),
                f.data,
                f.content_type,
            )
            if entry.get("description"):
                stored["description"] = entry["description"]  # the file's alt text
            added.append(stored)
        return kept + added

    def _edit(self, message: Message, body: Any) -> Message:
        body = body if isinstance(body, dict) else {}
        if "content" in body:
            content = str(body.get("content") or "")
            self._check_content(content, body, creating=False)
            message.content = content
        message.edited_at = time.time()
        message.versions.append(message.content)
        message.allowed_mentions.append(body.get("allowed_mentions"))
        if "flags" in body and body["flags"] is not None:
            # Only SUPPRESS_EMBEDS may change on edit; the rest is kept.
            message.flags = (message.flags & ~(1 << 2)) | (int(body["flags"]) & (1 << 2))
        if not message.ephemeral_to:
            self._dispatch_message("MESSAGE_UPDATE", message)
        return message

    async def _delete_message(self, call: Call, match: dict[str, str]) -> None:
        message = self._find(match["channel_id"], match["message_id"])
        if not message.by_bot:
            raise DiscordError(403, 50013, "Missing Permissions")
        self._deleted(message)

    def _deleted(self, message: Message) -> None:
        message.deleted = True
        self.cdn.forget([a["id"] for a in message.attachments])
        data: JSON = {"id": message.id, "channel_id": message.channel_id}
        guild_id = self.guild_of(message.channel_id)
        if guild_id:
            data["guild_id"] = guild_id
        self._dispatch(
            "MESSAGE_DELETE", data, intent=GUILD_MESSAGES if guild_id else DIRECT_MESSAGES
        )

    async def _typing(self, call: Call, match: dict[str, str]) -> None:
        cid = match["channel_id"]
        self._channel(cid)
        self.typing.append(Typing(cid, call.at))

    async def _start_thread(self, call: Call, match: dict[str, str]) -> JSON:
        cid = match["channel_id"]
        channel = self._channel(cid)
        message = self._find(cid, match["message_id"])
        if channel["type"] not in (GUILD_TEXT, 5):
            raise DiscordError(400, 50024, "Cannot execute action on this channel type")
        body = call.body if isinstance(call.body, dict) else {}
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise DiscordError(
                400,
                50035,
                "Invalid Form Body",
                {
                    "name": {
                        "_errors": [
                            {
                                "code": "BASE_TYPE_BAD_LENGTH",
                                "message": "Must be between 1 and 100 in length.",
                            }
                        ]
                    }
                },
            )
        if message.thread_id is not None:
            raise DiscordError(400, 160004, "A thread has already been created for this message")
        # Threads started from a message take the message's id.
        thread = self._thread_shape(message.id, channel, name, BOT_USER_ID, private=False)
        thread["thread_metadata"]["auto_archive_duration"] = int(
            body.get("auto_archive_duration") or 1440
        )
        thread["rate_limit_per_user"] = int(body.get("rate_limit_per_user") or 0)
        self.channels[message.id] = thread
        self._guild(channel["guild_id"]).channels.append(message.id)
        message.thread_id = message.id
        self._dispatch_guild("THREAD_CREATE", {**thread, "newly_created": True}, GUILDS)
        return thread

    # -- shapes ---------------------------------------------------------------------

    def _user(self, user_id: str) -> JSON:
        user = self.users.get(user_id)
        if user is None:
            raise KeyError(f"FakeDiscord: unknown user {user_id}")
        return dict(user)

    def _guild(self, guild: Id) -> _Guild:
        g = self._guilds.get(str(guild))
        if g is None:
            raise DiscordError(404, 10004, "Unknown Guild")
        return g

    def _channel(self, channel_id: str) -> JSON:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise DiscordError(404, 10003, "Unknown Channel")
        return channel

    def _find(self, channel_id: str, message_id: str) -> Message:
        self._channel(channel_id)
        for message in self._messages[channel_id]:
            if message.id == message_id and not message.deleted:
                return message
        raise DiscordError(404, 10008, "Unknown Message")

    def _guild_owner_or_bot(self) -> str:
        for g in self._guilds.values():
            return g.owner_id
        return BOT_USER_ID

    def _thread_shape(
        self, tid: str, parent: JSON, name: str, owner: str, *, private: bool
    ) -> JSON:
        now = _iso(time.time())
        return {
            "id": tid,
            "type": PRIVATE_THREAD if private else PUBLIC_THREAD,
            "guild_id": parent["guild_id"],
            "parent_id": parent["id"],
            "owner_id": owner,
            "name": name,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "flags": 0,
            "applied_tags": [],
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": now,
                "locked": False,
                "create_timestamp": now,
            },
        }

    def _attachment(self, channel_id: str, index: int) -> JSON:
        name = f"file{index + 1}.txt"
        return self.cdn.store(
            self.next_id(), channel_id, name, b"hello world\n", "text/plain; charset=utf-8"
        )

    def _member_shape(self, guild_id: str, user_id: str, *, with_user: bool) -> JSON:
        g = self._guild(guild_id)
        member = g.members.get(user_id) or {"nick": None, "roles": [], "joined_at": None}
        shape: JSON = {
            "nick": member["nick"],
            "roles": list(member["roles"]),
            "joined_at": member["joined_at"],
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "avatar": None,
            "communication_disabled_until": None,
        }
        if with_user:
            shape["user"] = self._user(user_id)
        return shape

    def _guild_shape(self, g: _Guild, *, full: bool) -> JSON:
        shape: JSON = {
            "id": g.id,
            "name": g.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": g.owner_id,
            "region": "deprecated",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": list(g.roles.values()),
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "nsfw_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "max_members": 500_000,
            "incidents_data": None,
        }
        if full:
            guild_channels = [self.channels[c] for c in g.channels]
            shape.update(
                unavailable=False,
                large=False,
                joined_at=g.members[BOT_USER_ID]["joined_at"],
                member_count=len(g.members),
                members=[self._member_shape(g.id, u, with_user=True) for u in g.members],
                channels=[
                    c for c in guild_channels if c["type"] not in (PUBLIC_THREAD, PRIVATE_THREAD)
                ],
                threads=[c for c in guild_channels if c["type"] in (PUBLIC_THREAD, PRIVATE_THREAD)],
                presences=[],
                voice_states=[],
                stage_instances=[],
                guild_scheduled_events=[],
                soundboard_sounds=[],
            )
        return shape

    def _message_shape(self, message: Message, *, gateway: bool = False) -> JSON:
        """A message object; gateway dispatches add ``guild_id`` and the author's ``member``."""
        guild_id = self.guild_of(message.channel_id)
        author = self._user(message.author_id)
        if message.webhook_id is not None:
            author["bot"] = True  # webhook authors look like bots with the webhook's id
        shape: JSON = {
            "id": message.id,
            "channel_id": message.channel_id,
            "type": message.type,
            "author": author,
            "content": message.content,
            "timestamp": _iso(_snowflake_time(message.id)),
            "edited_timestamp": _iso(message.edited_at) if message.edited_at else None,
            "tts": False,
            "mention_everyone": message.mention_everyone,
            "mentions": [self._mentioned_user(guild_id, u, gateway) for u in message.mentions],
            "mention_roles": list(message.mention_roles),
            "attachments": [self.cdn.signed(a) for a in copy.deepcopy(message.attachments)],
            "embeds": [],
            "pinned": False,
            "flags": message.flags,
            "components": [],
        }
        if message.reactions:
            shape["reactions"] = [
                {
                    "count": len(users),
                    "count_details": {"burst": 0, "normal": len(users)},
                    "me": BOT_USER_ID in users,
                    "me_burst": False,
                    "emoji": {"id": None, "name": emoji},
                    "burst_colors": [],
                }
                for emoji, users in message.reactions.items()
            ]
        if message.webhook_id is not None:
            shape["webhook_id"] = message.webhook_id
        if message.nonce is not None:
            shape["nonce"] = message.nonce
        if message.reference is not None:
            ref: JSON = {
                "type": 0,
                "message_id": message.reference,
                "channel_id": message.channel_id,
            }
            if guild_id:
                ref["guild_id"] = guild_id
            shape["message_reference"] = ref
            referenced = self.message(message.reference)
            shape["referenced_message"] = (
                self._message_shape(referenced) if referenced and not referenced.deleted else None
            )
        if message.thread_id is not None and message.thread_id in self.channels:
            shape["thread"] = self.channels[message.thread_id]
        if message.interaction_id is not None:
            interaction = next(
                (i for i in self._interactions.values() if i["id"] == message.interaction_id), None
            )
            if interaction is not None:
                user = interaction.get("member", {}).get("user") or interaction.get("user")
                shape["application_id"] = APP_ID
                shape["interaction_metadata"] = {
                    "id": interaction["id"],
                    "type": 2,
                    "user": user,
                    "authorizing_integration_owners": interaction["authorizing_integration_owners"],
                }
        if gateway and guild_id is not None:
            shape["guild_id"] = guild_id
            if message.webhook_id is None and self.message_members:
                shape["member"] = self._member_shape(guild_id, message.author_id, with_user=False)
        return shape

    def _mentioned_user(self, guild_id: str | None, user_id: str, gateway: bool) -> JSON:
        user = self._user(user_id)
        if gateway and guild_id is not None and user_id in self._guild(guild_id).members:
            user["member"] = self._member_shape(guild_id, user_id, with_user=False)
        return user

    # -- storing messages --------------------------------------------------------------

    @staticmethod
    def _created(message: Message) -> float:
        return message.created_at or _snowflake_time(message.id)

    def _claim_id(self, message_id: Id | None) -> str:
        if message_id is None:
            return self.next_id()
        # Keep later generated ids above an explicit one, as Discord's clock would.
        self._last_id = max(self._last_id, int(message_id))
        return str(message_id)

    def _store(self, message: Message, allowed_mentions: JSON | None) -> None:
        message.versions.append(message.content)
        message.allowed_mentions.append(allowed_mentions)
        self._messages[message.channel_id].append(message)
        channel = self.channels[message.channel_id]
        channel["last_message_id"] = message.id
        if channel["type"] in (PUBLIC_THREAD, PRIVATE_THREAD):
            channel["message_count"] += 1
            channel["total_message_sent"] += 1

    def _check_content(self, content: str, body: JSON, *, creating: bool) -> None:
        if len(content) > self.max_content:
            raise DiscordError(
                400,
                50035,
                "Invalid Form Body",
                {
                    "content": {
                        "_errors": [
                            {
                                "code": "BASE_TYPE_MAX_LENGTH",
                                "message": f"Must be {self.max_content} or fewer in length.",
                            }
                        ]
                    }
                },
            )
        if not content and not any(
            body.get(k) for k in ("embeds", "attachments", "components", "sticker_ids", "poll")
        ):
            raise DiscordError(400, 50006, "Cannot send an empty message")

    # -- gateway ------------------------------------------------------------------

    def _dispatch_message(self, event: str, message: Message) -> None:
        if message.by_bot and not self.echo_bot_messages:
            return
        guild_id = self.guild_of(message.channel_id)
        self._dispatch(
            event,
            self._message_shape(message, gateway=True),
            intent=GUILD_MESSAGES if guild_id else DIRECT_MESSAGES,
        )

    def _dispatch_guild(self, event: str, data: JSON, intent: int) -> None:
        self._dispatch(event, data, intent=intent)

    def _dispatch(self, event: str, data: JSON, *, intent: int) -> None:
        guild_id = data.get("guild_id") or (data.get("id") if event.startswith("GUILD_") else None)
        for session in self._sessions.values():
            if session.invalidated or (intent and not session.intents & intent):
                continue
            if not session.receives(str(guild_id) if guild_id is not None else None):
                continue
            self._send_dispatch(session, event, _for_session(event, data, session.intents))

    def _send_dispatch(self, session: _Session, event: str, data: Any) -> None:
        session.seq += 1
        frame = {"op": 0, "s": session.seq, "t": event, "d": data}
        session.frames.append(frame)
        if session.conn is not None:
            session.conn.send(frame)

    @property
    def connected_shards(self) -> list[list[int] | None]:
        """The ``shard`` of each identified, open gateway connection (None: unsharded)."""
        return [c.session.shard for c in self._live_conns() if c.session is not None]

    def _live_conns(self) -> list[_Conn]:
        return [c for c in self._conns if c.session is not None and not c.closing]

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if not self.gateway_open:
            return web.Response(status=503, text="gateway unavailable")
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        query = dict(request.query)
        self.gateway_connections.append(GatewayConnection(query, time.monotonic()))
        compressor = None
        if self.zlib_stream and query.get("compress") == "zlib-stream":
            compressor = zlib.compressobj()
        conn = _Conn(ws=ws, request=request, query=query, compressor=compressor)
        self._conns.append(conn)
        writer = asyncio.create_task(self._write(conn))
        self._tasks.add(writer)
        writer.add_done_callback(self._tasks.discard)
        conn.send({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        try:
            async for frame in ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                self._on_frame(conn, json.loads(frame.data))
        finally:
            conn.closing = True
            if conn in self._conns:
                self._conns.remove(conn)
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
            writer.cancel()
        return ws

    async def _write(self, conn: _Conn) -> None:
        while True:
            frame = await conn.outbox.get()
            if conn.ws.closed:
                return
            if isinstance(frame, _Close):
                await conn.ws.close(code=frame.code, message=frame.reason.encode())
                return
            text = json.dumps(frame)
            try:
                if conn.compressor is not None:
                    data = conn.compressor.compress(text.encode()) + conn.compressor.flush(
                        zlib.Z_SYNC_FLUSH
                    )
                    await conn.ws.send_bytes(data)
                else:
                    await conn.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    def _on_frame(self, conn: _Conn, frame: JSON) -> None:
        op = frame.get("op")
        data = frame.get("d")
        if op == 1:  # HEARTBEAT
            self.heartbeats += 1
            if self.ack_heartbeats:
                conn.send({"op": 11})
        elif op == 2 and isinstance(data, dict):
            self._identify(conn, data)
        elif op == 6 and isinstance(data, dict):
            self._resume(conn, data)
        elif op == 8 and isinstance(data, dict) and conn.session is not None:
            self._request_members(conn.session, data)
        # Presence (3), voice (4) and anything else: accepted, ignored.

    def _token_ok(self, token: object) -> bool:
        if not isinstance(token, str) or not token:
            return False
        token = token.removeprefix("Bot ")
        return self.valid_tokens is None or token in self.valid_tokens

    def _identify(self, conn: _Conn, data: JSON) -> None:
        self.identifies.append({k: v for k, v in data.items() if k != "token"})
        if conn.session is not None:
            conn.send(_Close(4005, "Already authenticated."))
            return
        if not self._token_ok(data.get("token")):
            conn.send(_Close(4004, "Authentication failed."))
            return
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0 or intents >= 1 << 26:
            conn.send(_Close(4013, "Invalid intent(s)."))
            return
        refused = (
            (intents & MESSAGE_CONTENT and not self.message_content_allowed)
            or (intents & GUILD_MEMBERS and not self.members_intent_allowed)
            or (intents & GUILD_PRESENCES and not self.presences_intent_allowed)
        )
        if refused:
            conn.send(_Close(4014, "Disallowed intent(s)."))
            return
        shard = data.get("shard")
        if shard is not None and not _valid_shard(shard):
            conn.send(_Close(4010, "Invalid shard."))
            return
        session = _Session(id=uuid.uuid4().hex, intents=intents, shard=shard)
        self._sessions[session.id] = session
        session.conn = conn
        conn.session = session
        guilds = [g for g in self._guilds.values() if session.receives(g.id)]
        ready: JSON = {
            "v": 10,
            "user": {**self._user(BOT_USER_ID), "verified": True, "mfa_enabled": False},
            "guilds": [{"id": g.id, "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": APP_ID, "flags": self.app_flags()},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "_trace": ['["fake-discord-gateway",{"micros":0}]'],
        }
        if session.shard is not None:
            ready["shard"] = session.shard
        self._send_dispatch(session, "READY", ready)
        # Unverified: Discord is said to lazy-load guilds without the GUILDS intent too.
        for g in guilds:
            shape = self._guild_shape(g, full=True)
            if not intents & GUILD_MEMBERS:
                # Without the members intent Discord sends only the bot's own member (and
                # members in voice); discord.py then caches no one else.
                shape["members"] = [m for m in shape["members"] if m["user"]["id"] == BOT_USER_ID]
            self._send_dispatch(session, "GUILD_CREATE", shape)

    def _resume(self, conn: _Conn, data: JSON) -> None:
        self.resumes.append({k: v for k, v in data.items() if k != "token"})
        session = self._sessions.get(str(data.get("session_id")))
        if session is None or session.invalidated or not self._token_ok(data.get("token")):
            conn.send({"op": 9, "d": False})
            return
        seq = data.get("seq")
        after = (seq if isinstance(seq, int) else 0) - self.resume_replays_delivered
        self.resume_replays_delivered = 0
        if session.conn is not None and session.conn is not conn:
            # Discord closes the session's previous connection when a new one resumes it.
            session.conn.send(_Close(4000, "Session resumed elsewhere"))
        for frame in session.frames:
            if frame["s"] > after:
                conn.send(frame)
        session.conn = conn
        conn.session = session
        self._send_dispatch(session, "RESUMED", {"_trace": ['["fake-discord-gateway"]']})

    def _request_members(self, session: _Session, data: JSON) -> None:
        g = self._guilds.get(str(data.get("guild_id")))
        if g is None:
            return
        wanted = data.get("user_ids")
        users = [str(u) for u in wanted] if isinstance(wanted, list) else list(g.members)
        query = str(data.get("query") or "").lower()
        chunk: JSON = {
            "guild_id": g.id,
            "members": [
                self._member_shape(g.id, u, with_user=True)
                for u in users
                if u in g.members and self.users[u]["username"].lower().startswith(query)
            ],
            "chunk_index": 0,
            "chunk_count": 1,
        }
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)


# -- module helpers ----------------------------------------------------------------


def _valid_shard(shard: object) -> bool:
    """``[shard_id, num_shards]`` with 0 <= shard_id < num_shards (docs: Identify)."""
    if not isinstance(shard, list) or len(shard) != 2:
        return False
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in shard):
        return False
    return 0 <= shard[0] < shard[1]


def _json_response(
    body: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    # Exactly "application/json": discord.py's json_or_text compares the header verbatim and
    # hands back the raw text for "application/json; charset=utf-8".
    return web.Response(
        body=json.dumps(body).encode(),
        status=status,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


async def _not_found(call: Call, match: dict[str, str]) -> JSON:
    raise DiscordError(404, 0, "404: Not Found")


async def _read_body(request: web.Request) -> tuple[Any, tuple[FakeFile, ...]]:
    """The JSON body, and the files of a multipart one (``files[n]`` parts, by n)."""
    if not request.can_read_body:
        return None, ()
    if request.content_type == "application/json":
        return await request.json(), ()
    if request.content_type.startswith("multipart/"):
        # discord.py sends files as multipart with the JSON in "payload_json".
        form = await request.post()
        payload = form.get("payload_json")
        parts: dict[int, FakeFile] = {}
        for name, value in form.items():
            found = re.fullmatch(r"files\[(\d+)\]", name)
            if found and isinstance(value, web.FileField):
                # Discord works the type out itself; discord.py sends octet-stream.
                kind = mimetypes.guess_type(value.filename)[0] or "application/octet-stream"
                parts[int(found.group(1))] = FakeFile(value.filename, value.file.read(), kind)
        files = tuple(parts[n] for n in sorted(parts))
        return (json.loads(payload) if isinstance(payload, str) else None), files
    text = await request.text()
    return (json.loads(text) if text.strip() else None), ()


def _for_session(event: str, data: JSON, intents: int) -> JSON:
    """A private copy of ``data`` as a session with ``intents`` receives it.

    Without MESSAGE_CONTENT, guild messages arrive without content, embeds, attachments and
    components unless they mention the bot or are the bot's own (docs: Message Content
    Intent); DMs keep theirs.
    """
    data = copy.deepcopy(data)
    if event not in ("MESSAGE_CREATE", "MESSAGE_UPDATE") or intents & MESSAGE_CONTENT:
        return data
    if "guild_id" not in data or data.get("author", {}).get("id") == BOT_USER_ID:
        return data
    if any(u.get("id") == BOT_USER_ID for u in data.get("mentions", [])):
        return data
    data.update(content="", embeds=[], attachments=[], components=[])
    return data


def _parse_mentions(content: str) -> tuple[list[str], list[str], bool]:
    users: list[str] = []
    roles: list[str] = []
    everyone = False
    for match in _MENTION.finditer(content):
        user, role = match.group(1), match.group(2)
        if user and user not in users:
            users.append(user)
        elif role and role not in roles:
            roles.append(role)
        elif match.group(0) in ("@everyone", "@here"):
            everyone = True
    return users, roles, everyone


def _pinged(content: str, allowed: JSON | None) -> tuple[list[str], list[str], bool]:
    """The mentions a bot's message carries: those in the content that ``allowed`` permits."""
    users, roles, everyone = _parse_mentions(content)
    if allowed is None:
        return users, roles, everyone
    parse = allowed.get("parse") or []
    allowed_users = {str(u) for u in allowed.get("users") or []}
    allowed_roles = {str(r) for r in allowed.get("roles") or []}
    return (
        [u for u in users if "users" in parse or u in allowed_users],
        [r for r in roles if "roles" in parse or r in allowed_roles],
        everyone and "everyone" in parse,
    )


def _pinging_forms(content: str, allowed: JSON | None) -> set[str]:
    users, roles, everyone = _pinged(content, allowed)
    forms: set[str] = set()
    for match in _MENTION.finditer(content):
        user, role = match.group(1), match.group(2)
        if (user and user in users) or (role and role in roles):
            forms.add(match.group(0))
        elif not user and not role and everyone:
            forms.add(match.group(0))
    return forms


@dataclass
class _Window:
    """One rate-limit window: when it resets, and how many calls it has taken."""

    reset_at: float
    used: int

    def spent(self, now: float, limit: int, seconds: float) -> bool:
        """Count a call; True (not counted) when the window has none left."""
        if now >= self.reset_at:
            self.reset_at, self.used = now + seconds, 0
        if self.used >= limit:
            return True
        self.used += 1
        return False


_MAJOR = ("channel_id", "guild_id", "webhook_id", "webhook_token")


def _major_params(call: Call) -> dict[str, str]:
    """The top-level resources in ``call``'s path, read against its route template."""
    names = re.findall(r"{(\w+)}", call.route)
    # Route templates hold no regex metacharacters besides their {placeholders}.
    pattern = "^" + re.sub(r"{\w+}", "([^/]+)", call.route) + "$"
    found = re.match(pattern, call.path)
    values = found.groups() if found else ()
    return dict(zip(names, values, strict=False))


def _bucket_of(call: Call) -> tuple[str, ...]:
    """A rate-limit bucket: the route, per top-level resource (docs: Rate Limits)."""
    match = _major_params(call)
    return (call.key, *(match.get(name, "") for name in _MAJOR))


def _snowflake_time(snowflake: str) -> float:
    return ((int(snowflake) >> 22) + DISCORD_EPOCH_MS) / 1000


def _iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat()


@contextlib.contextmanager
def point_discord_py_at(fake: FakeDiscord) -> Iterator[None]:
    """Point discord.py's REST base and default gateway at ``fake``; restore both after.

    Both are class attributes (process-wide), so only one fake can be pointed at at a time.
    """
    import discord.gateway
    import discord.http
    import yarl

    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


__all__ = [
    "APP_ID",
    "BOT_USER_ID",
    "DIRECT_MESSAGES",
    "DIRECT_MESSAGE_REACTIONS",
    "GATEWAY_MESSAGE_CONTENT",
    "GATEWAY_MESSAGE_CONTENT_LIMITED",
    "GUILDS",
    "GUILD_FORUM",
    "GUILD_MESSAGES",
    "GUILD_MESSAGE_REACTIONS",
    "MAX_CONTENT",
    "MESSAGE_CONTENT",
    "Call",
    "DiscordError",
    "FakeDiscord",
    "GatewayConnection",
    "InteractionResponse",
    "Message",
    "ReactionEvent",
    "Typing",
    "point_discord_py_at",
    "shard_of",
]
