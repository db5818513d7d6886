"""The Slack adapter: a Bolt app that turns thread messages into core events.

Socket Mode when an app-level token is configured, otherwise the HTTP Events
API (``POST /slack/events``, ``GET /healthz``). Bolt acknowledges each event
before the listener runs; the listener only filters, translates and hands the
event to the core, which answers in the background.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
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
from adapters.slack.reply import SlackFeatures, SlackReply
from adapters.slack.settings import SlackSettings
from adapters.slack.text import decode_inbound, mentioned_user_ids, strip_bot_mention
from bridge.core import Bridge
from bridge.events import ContextMessage, PlatformEvent, ThreadKey
from bridge.reply import Capabilities
from bridge.store import Turn

log = logging.getLogger(__name__)

# markdown_text (and the markdown block) take up to 12,000 characters.
MESSAGE_LIMIT = 12_000
SCOPES = (
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "chat:write",
    "users:read",
)


def make_client(settings: SlackSettings) -> AsyncWebClient:
    assert settings.bot_token is not None
    return AsyncWebClient(
        token=settings.bot_token.get_secret_value(),
        base_url=settings.api_url,
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(max_retry_count=5),
            AsyncServerErrorRetryHandler(max_retry_count=2),
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
        ],
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


class SlackAdapter:
    def __init__(self, bridge: Bridge, settings: SlackSettings) -> None:
        self._bridge = bridge
        self._settings = settings
        self.client = make_client(settings)
        self._capabilities = Capabilities(
            max_message_length=MESSAGE_LIMIT, min_update_interval=settings.update_interval
        )
        self._features = SlackFeatures(streaming=settings.native_streaming)
        self._names: dict[str, str] = {}
        self._identity: Identity | None = None
        self.app = AsyncApp(
            client=self.client,
            signing_secret=(
                settings.signing_secret.get_secret_value() if settings.signing_secret else None
            ),
            request_verification_enabled=not settings.socket_mode,
        )
        self.app.event("app_mention")(self._on_event)
        self.app.event("message")(self._on_event)
        self._socket: AsyncSocketModeHandler | None = None
        self._runner: web.AppRunner | None = None
        self.http_port: int | None = None

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def recovery_reply(self, key: ThreadKey, turn: Turn) -> SlackReply:
        """A reply into ``key``'s thread for a turn an earlier run left unfinished.
        The asker is not stored, so no native stream (it needs the recipient)."""
        features = SlackFeatures(streaming=False, markdown_text=self._features.markdown_text)
        return self._reply(key, recipient_user_id="", features=features)

    def _reply(
        self, key: ThreadKey, *, recipient_user_id: str, features: SlackFeatures
    ) -> SlackReply:
        return SlackReply(
            client=self.client,
            channel=key.channel,
            thread_ts=key.thread,
            recipient_user_id=recipient_user_id,
            recipient_team_id=key.workspace or self.identity.team_id,
            limit=MESSAGE_LIMIT,
            features=features,
        )

    @property
    def identity(self) -> Identity:
        assert self._identity is not None, "start() first"
        return self._identity

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        self._identity = await identify(self.client)
        if self._identity.missing_scopes:
            log.warning("Slack token lacks scopes: %s", ", ".join(self._identity.missing_scopes))
        if self._settings.socket_mode:
            assert self._settings.app_token is not None
            self._socket = AsyncSocketModeHandler(
                self.app, self._settings.app_token.get_secret_value(), web_client=self.client
            )
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
            log.info("Slack connected in Socket Mode as %s", self._identity.user_id)
        else:
            self._runner = web.AppRunner(self.http_app())
            await self._runner.setup()
            site = web.TCPSite(self._runner, self._settings.http_host, self._settings.http_port)
            await site.start()
            self.http_port = self._runner.addresses[0][1]
            log.info(
                "Slack events on http://%s:%s/slack/events",
                self._settings.http_host,
                self.http_port,
            )

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
        if self._runner is not None:
            await self._runner.cleanup()

    def http_app(self) -> web.Application:
        async def events(request: web.Request) -> web.Response:
            return await to_aiohttp_response(
                await self.app.async_dispatch(await to_bolt_request(request))
            )

        async def healthz(_: web.Request) -> web.Response:
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_post("/slack/events", events)
        app.router.add_get("/healthz", healthz)
        return app

    # -- events ---------------------------------------------------------------

    async def _on_event(self, body: dict[str, Any]) -> None:
        message = inbound.parse(body)
        if message is None:
            return
        key = ThreadKey("slack", message.team, message.channel, message.thread)
        decision = inbound.decide(
            message, self.identity.user_id, known_thread=await self._bridge.knows_thread(key)
        )
        if not decision.answer:
            return
        context = await self._context(message) if decision.needs_context else ()
        text = strip_bot_mention(message.text, self.identity.user_id)
        event = PlatformEvent(
            event_id=message.delivery_id,
            thread=key,
            message_id=message.ts,
            author_id=message.user,
            author_name=await self._name(message.user),
            text=decode_inbound(text, await self._names_in(text)),
            context=context,
        )
        reply = self._reply(key, recipient_user_id=message.user, features=self._features)
        await self._bridge.submit(event, reply, self._capabilities)

    async def _context(self, message: inbound.SlackMessage) -> tuple[ContextMessage, ...]:
        """The thread so far, when the bot is mentioned in a thread it was not in."""
        try:
            response = await self.client.conversations_replies(
                channel=message.channel, ts=message.thread, limit=200
            )
        except SlackApiError as exc:
            log.warning("cannot read thread %s: %s", message.thread, exc.response.get("error"))
            return ()
        earlier = []
        for item in response.get("messages") or []:
            if item.get("ts") == message.ts or float(item.get("ts", 0)) > float(message.ts):
                continue
            text = str(item.get("text") or "")
            from_bot = bool(item.get("bot_id"))
            name = "assistant" if from_bot else await self._name(str(item.get("user") or "?"))
            earlier.append(
                ContextMessage(name, decode_inbound(text, await self._names_in(text)), from_bot)
            )
        return tuple(earlier)

    async def _names_in(self, text: str) -> dict[str, str]:
        return {uid: await self._name(uid) for uid in mentioned_user_ids(text)}

    async def _name(self, user_id: str) -> str:
        if user_id not in self._names:
            try:
                user = (await self.client.users_info(user=user_id)).get("user") or {}
                profile = user.get("profile") or {}
                self._names[user_id] = str(
                    profile.get("display_name")
                    or profile.get("real_name")
                    or user.get("real_name")
                    or user.get("name")
                    or user_id
                )
            except SlackApiError:
                return user_id
        return self._names[user_id]
