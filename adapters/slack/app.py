"""The Slack adapter: a Bolt app that turns thread messages into core events.

Socket Mode when an app-level token is configured, otherwise the HTTP Events
API (``POST /slack/events`` on the process's web server). Bolt acknowledges
each event before the listener runs; the listener only parses, decides and
queues the event with the core, with no Slack call on the way, so questions
are queued in the order they were delivered. The look-ups (names, the thread
so far) happen in ``prepare``, inside the turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import inbound
from adapters.slack.budget import SlackBudget
from adapters.slack.features import Recipient, Refusals
from adapters.slack.reply import CALL_ERRORS, SlackOutput, SlackReply, Target
from adapters.slack.settings import SlackSettings
from adapters.slack.text import decode_inbound, mentioned_user_ids, strip_bot_mention
from adapters.web import WebServer
from bridge.config import ConfigError
from bridge.events import ContextMessage, PlatformEvent, ThreadKey, order_key
from bridge.reply import Capabilities, Intake, SaveMessageIds

log = logging.getLogger(__name__)

SCOPES = (
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "chat:write",
    "users:read",
)
EVENTS_PATH = "/slack/events"
NAME_CACHE_SIZE = 5000
CONTEXT_LIMIT = 200  # earlier thread messages read when the bot joins a thread
READY_TIMEOUT = 3.0


def make_client(settings: SlackSettings, *, retries: bool = True) -> AsyncWebClient:
    """The bot's Web API client. ``retries``: wait out 429s (Retry-After), retry server
    and connection errors; without: every call is tried once (intermediate updates)."""
    if settings.bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN is not set")
    handlers = (
        [
            AsyncRateLimitErrorRetryHandler(max_retry_count=5),
            AsyncServerErrorRetryHandler(max_retry_count=2),
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
        ]
        if retries
        else []
    )
    return AsyncWebClient(
        token=settings.bot_token.get_secret_value(),
        base_url=settings.api_url,
        retry_handlers=handlers,
        timeout=30 if retries else 10,
    )


@dataclass(frozen=True)
class Identity:
    user_id: str
    team_id: str
    scopes: frozenset[str]

    @property
    def missing_scopes(self) -> list[str]:
        return [s for s in SCOPES if s not in self.scopes] if self.scopes else []


async def identify(client: AsyncWebClient) -> Identity:
    response = await client.auth_test()
    header = response.headers.get("x-oauth-scopes") or response.headers.get("X-OAuth-Scopes")
    scopes = frozenset(s.strip() for s in (header or "").split(",") if s.strip())
    return Identity(str(response["user_id"]), str(response.get("team_id") or ""), scopes)


@dataclass(frozen=True)
class _User:
    name: str
    team: str | None


class SlackAdapter:
    """``bridge.reply.Platform`` for Slack; registers itself with the core."""

    name = "slack"

    def __init__(
        self,
        bridge: Intake,
        settings: SlackSettings,
        *,
        web_server: WebServer | None = None,
        output: SlackOutput | None = None,
    ) -> None:
        self._bridge = bridge
        self._settings = settings
        self.client = make_client(settings)
        self._quick = make_client(settings, retries=False)
        self._output = output or SlackOutput(
            client=self.client,
            quick=self._quick,
            budget=SlackBudget(),
            refusals=Refusals(),
            streaming=settings.native_streaming,
        )
        self._capabilities = Capabilities(
            max_message_length=self._output.limit, min_update_interval=settings.update_interval
        )
        self._users: dict[str, _User] = {}
        self._identity: Identity | None = None
        # knows_thread → decide → submit as one step: a reply right after the mention that
        # opened its thread sees that thread, and questions queue in delivery order.
        self._order = asyncio.Lock()
        self.app = AsyncApp(
            client=self.client,
            signing_secret=(
                settings.signing_secret.get_secret_value() if settings.signing_secret else None
            ),
            request_verification_enabled=not settings.socket_mode,
            # Acknowledge only once the question is stored (the listener makes no Slack
            # call and takes milliseconds): an event Slack saw acknowledged is never lost.
            process_before_response=True,
        )
        self.app.event("app_mention")(self._on_event)
        self.app.event("message")(self._on_event)
        self._socket: AsyncSocketModeHandler | None = None
        self._web = web_server
        self._own_web: WebServer | None = None
        if web_server is not None:
            self.mount(web_server)
        bridge.register(self)

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def identity(self) -> Identity:
        if self._identity is None:
            raise RuntimeError("SlackAdapter.start() has not run yet")
        return self._identity

    @property
    def http_port(self) -> int | None:
        """Where ``POST /slack/events`` listens in HTTP mode (None in Socket Mode)."""
        if self._settings.socket_mode:
            return None
        server = self._web or self._own_web
        return server.port if server is not None else None

    def mount(self, server: WebServer) -> None:
        """Add the readiness check and, in HTTP mode, ``POST /slack/events``."""
        server.add_check("slack", self.ready)
        if not self._settings.socket_mode:
            server.add_route("POST", EVENTS_PATH, self._http_events)

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        self._identity = await identify(self.client)
        if self._identity.missing_scopes:
            log.warning("Slack token lacks scopes: %s", ", ".join(self._identity.missing_scopes))
        if self._settings.socket_mode:
            if self._settings.app_token is None:
                raise ConfigError("SLACK_APP_TOKEN is not set")
            self._socket = AsyncSocketModeHandler(
                self.app, self._settings.app_token.get_secret_value(), web_client=self.client
            )
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
            log.info("Slack connected in Socket Mode as %s", self._identity.user_id)
            return
        if self._web is None:
            # No shared web server given (tests, embedding): serve the events route alone.
            self._own_web = WebServer()
            self.mount(self._own_web)
            await self._own_web.start(self._settings.http_host, self._settings.http_port)
        log.info("Slack events on %s (port %s)", EVENTS_PATH, self.http_port)

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        if self._own_web is not None:
            await self._own_web.stop()
            self._own_web = None

    async def close(self) -> None:
        """After the drain: nothing left to release (Web API calls hold no connection)."""

    async def ready(self) -> bool:
        """Readiness: Slack's Web API answers for this token right now."""
        try:
            await asyncio.wait_for(self._quick.auth_test(), READY_TIMEOUT)
        except SlackApiError as exc:
            # Slack answered: a rate limit still means it is reachable.
            return bool(exc.response.status_code == 429)
        return True

    async def _http_events(self, request: web.Request) -> web.Response:
        if self._identity is None:
            # Mounted before start(): Slack retries the delivery.
            return web.json_response({"ok": False, "error": "starting"}, status=503)
        return await to_aiohttp_response(
            await self.app.async_dispatch(await to_bolt_request(request))
        )

    # -- inbound ----------------------------------------------------------------

    async def _on_event(self, body: dict[str, Any]) -> None:
        message = inbound.parse(body)
        if message is None:
            return
        bot = self.identity.user_id
        key = ThreadKey("slack", message.team, message.channel, message.thread)
        async with self._order:
            known = await self._bridge.knows_thread(key)
            decision = inbound.decide(message, bot, known_thread=known)
            if not decision.answer:
                return
            event = PlatformEvent(
                event_id=message.delivery_id,
                thread=key,
                message_id=message.ts,
                author_id=message.user,
                author_name="",  # prepare() looks it up, inside the turn
                text=strip_bot_mention(message.text, bot),
                order=order_key(message.ts),
                needs_context=decision.needs_context,
            )
            await self._bridge.submit(event)

    async def prepare(self, event: PlatformEvent) -> PlatformEvent:
        """Names, readable text and the thread so far. An event that already has its
        author's name was prepared before and is returned as it is."""
        if event.author_name:
            return event
        # A turn stored before events were kept has no author: nothing to look up.
        author = await self._user(event.author_id) if event.author_id else _User("", None)
        text = decode_inbound(event.text, await self._names_in(event.text))
        context = event.context
        if event.needs_context and not context:
            context = await self._context(event)
        return replace(event, author_name=author.name, text=text, context=context)

    async def _context(self, event: PlatformEvent) -> tuple[ContextMessage, ...]:
        """The thread before ``event``, when the bot joins a thread it was not in."""
        try:
            response = await self.client.conversations_replies(
                channel=event.thread.channel, ts=event.thread.thread, limit=CONTEXT_LIMIT
            )
        except CALL_ERRORS as exc:
            log.warning("cannot read thread %s: %s", event.thread.thread, _describe(exc))
            return ()
        earlier = []
        for item in response.get("messages") or []:
            ts = str(item.get("ts") or "")
            if not ts or order_key(ts) >= order_key(event.message_id):
                continue
            text = str(item.get("text") or "")
            from_bot = bool(item.get("bot_id"))
            name = (
                "assistant" if from_bot else (await self._user(str(item.get("user") or "?"))).name
            )
            earlier.append(
                ContextMessage(name, decode_inbound(text, await self._names_in(text)), from_bot)
            )
        return tuple(earlier)

    async def _names_in(self, text: str) -> dict[str, str]:
        return {uid: (await self._user(uid)).name for uid in mentioned_user_ids(text)}

    async def _user(self, user_id: str) -> _User:
        """Display name and home team; on a failed look-up the id (not cached)."""
        cached = self._users.get(user_id)
        if cached is not None:
            return cached
        try:
            user = (await self.client.users_info(user=user_id)).get("user") or {}
        except CALL_ERRORS as exc:
            log.info("cannot look up %s: %s", user_id, _describe(exc))
            return _User(user_id, None)
        profile = user.get("profile") or {}
        name = str(
            profile.get("display_name")
            or profile.get("real_name")
            or user.get("real_name")
            or user.get("name")
            or user_id
        )
        if len(self._users) >= NAME_CACHE_SIZE:
            self._users.pop(next(iter(self._users)))  # the oldest entry
        found = _User(name, str(user.get("team_id") or profile.get("team") or "") or None)
        self._users[user_id] = found
        return found

    # -- replies ------------------------------------------------------------------

    def reply(
        self, event: PlatformEvent, message_ids: Sequence[str], save_ids: SaveMessageIds
    ) -> SlackReply:
        home = event.thread.workspace or self.identity.team_id
        known = self._users.get(event.author_id)
        team = known.team if known is not None and known.team else home
        target = Target(
            workspace=home,
            channel=event.thread.channel,
            thread_ts=event.thread.thread,
            recipient_user_id=event.author_id,
            recipient_team_id=team,
            recipient=Recipient.TEAM if team == home else Recipient.EXTERNAL,
        )
        return SlackReply(self._output, target, message_ids, save_ids)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or exc.response.status_code)
    return type(exc).__name__
