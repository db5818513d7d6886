"""The Slack adapter: a Bolt app that turns thread messages into core events.

Socket Mode when an app-level token is configured, otherwise the HTTP Events
API (``POST /slack/events`` on the process's web server). Bolt acknowledges
each event once the listener has run: the listener parses, decides and queues
the event with the core, so an acknowledged question is stored. The only Slack
calls before the acknowledgement are the facts the access policy needs about
the asker (cached, bounded by ``facts.LOOKUP_TIMEOUT``); they run for all events
at once, and the events still queue one at a time in delivery order
(``InOrder``). The rest (names, the place, the thread so far) happens in
``prepare``, inside the turn. Refused askers get a notice only they see
(``notices``). Each channel's ``respond_to`` rule decides what is a question
there (``inbound.decide``). Reactions on answers (``reacting``), assistant
threads (``assistant``) and channel renames (``places``) are acknowledged at
once; their work runs in the background (``chores``). Files sent with a question
travel as Slack describes them and are downloaded when the core asks (``files``).

In HTTP mode every request is screened before Bolt parses it (``screening``).
Every Web API call of the process goes through one HTTP session (``client``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import assistant, changes, inbound, reactions
from adapters.slack.assistant import Assistant
from adapters.slack.budget import Rates, SlackBudget
from adapters.slack.chores import Chores
from adapters.slack.client import SlackHttp
from adapters.slack.client import make_client as make_client  # where tests and check find it
from adapters.slack.facts import Facts, describe
from adapters.slack.features import Recipient, Refusals
from adapters.slack.files import SlackFiles
from adapters.slack.inbound import SlackMessage
from adapters.slack.notices import Notices
from adapters.slack.places import Places, thread_link
from adapters.slack.reacting import Reactions
from adapters.slack.reply import CALL_ERRORS, SlackOutput, SlackReply, Target
from adapters.slack.screening import EVENTS_PATH, EventsEndpoint
from adapters.slack.settings import SlackSettings
from adapters.slack.text import decode_inbound, mentioned_user_ids, strip_bot_mention
from adapters.web import WebServer
from bridge.config import ConfigError
from bridge.errors import QuestionRefused
from bridge.events import ContextMessage, FileRef, PlatformEvent, ThreadKey, order_key
from bridge.policy import Asker
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
    "channels:read",  # channel names (folders), renames
    "groups:read",  # the same for private channels
    "mpim:read",  # a group DM told from a channel (reactions do not say which)
    "reactions:read",  # 👍 👎 ⏹ 🔁 on answers
    "files:read",  # files sent with questions (files.info, url_private_download)
    "files:write",  # images and files an answer brings, posted into its thread
)
# Needed only when BRIDGE_ALLOWED_ROLES names user groups (usergroups.users.list).
ROLES_SCOPE = "usergroups:read"
# Needed only for Slack's assistant threads (status, suggested prompts, titles).
ASSISTANT_SCOPE = assistant.SCOPE
CONTEXT_LIMIT = 200  # earlier thread messages read when the bot joins a thread
CONTEXT_PAGES = 25  # pages of a thread read for them at most (5,000 messages)
# The message Slack starts an assistant thread with (no one said it).
ASSISTANT_THREAD_SUBTYPE = "assistant_app_thread"
READY_TIMEOUT = 3.0


@dataclass(frozen=True)
class Identity:
    user_id: str
    team_id: str
    scopes: frozenset[str]
    url: str = ""  # the workspace's address, e.g. https://example.slack.com/

    @property
    def missing_scopes(self) -> list[str]:
        return [s for s in SCOPES if s not in self.scopes] if self.scopes else []

    def lacks(self, scope: str) -> bool:
        """The token's scopes are known and ``scope`` is not among them."""
        return bool(self.scopes) and scope not in self.scopes


async def identify(client: AsyncWebClient) -> Identity:
    response = await client.auth_test()
    header = response.headers.get("x-oauth-scopes") or response.headers.get("X-OAuth-Scopes")
    scopes = frozenset(s.strip() for s in (header or "").split(",") if s.strip())
    return Identity(
        str(response["user_id"]),
        str(response.get("team_id") or ""),
        scopes,
        str(response.get("url") or ""),
    )


class SlackAdapter:
    """``bridge.reply.Platform`` for Slack; registers itself with the core."""

    name = "slack"

    def __init__(
        self,
        bridge: Intake,
        settings: SlackSettings,
        *,
        web_server: WebServer | None = None,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        output: SlackOutput | None = None,
    ) -> None:
        self._bridge = bridge
        self._settings = settings
        self._http = SlackHttp()  # one connection pool for every Web API call
        self.client = make_client(settings, http=self._http)
        self._quick = make_client(settings, retries=False, http=self._http)
        self._output = output or SlackOutput(
            client=self.client,
            quick=self._quick,
            budget=SlackBudget(Rates().shared_by(settings.replicas)),
            refusals=Refusals(),
            streaming=settings.native_streaming,
        )
        self._capabilities = Capabilities(
            max_message_length=self._output.limit, min_update_interval=settings.update_interval
        )
        self._facts = Facts(self.client)
        self._files = SlackFiles(self.client, self._http, settings.api_url)
        self._places = Places(self.client)
        self._notices = Notices(self._quick)
        self._chores = Chores()
        self._reactions = Reactions(bridge, self._facts, self._places, self._notices, self._chores)
        self._assistant = Assistant(self.client, self._chores)
        self._identity: Identity | None = None
        self._stopping = False  # set by stop(): events are left to the next process
        # knows_thread → decide → submit as one step, one event at a time in delivery
        # order: a reply right after the mention that opened its thread sees that thread.
        self._order = InOrder()
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
        for name in reactions.EVENTS:
            self.app.event(name)(self._on_reaction)
        self.app.event("assistant_thread_started")(self._on_assistant_thread)
        for name in ("channel_rename", "group_rename"):
            self.app.event(name)(self._on_rename)
        self._socket: AsyncSocketModeHandler | None = None
        self._web = web_server
        self._own_web: WebServer | None = None
        self._listen = listen  # where its own server listens when none is shared
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
            secret = self._settings.signing_secret
            endpoint = EventsEndpoint(
                self.app, secret.get_secret_value() if secret else "", self._not_serving
            )
            server.add_route("POST", EVENTS_PATH, endpoint.handle)

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        self._identity = await identify(self.client)
        if self._identity.missing_scopes:
            log.warning("Slack token lacks scopes: %s", ", ".join(self._identity.missing_scopes))
        if self._bridge.access.allowed_roles and self._identity.lacks(ROLES_SCOPE):
            log.warning(
                "BRIDGE_ALLOWED_ROLES is set but the Slack token lacks %s:"
                " no one can be admitted by user group",
                ROLES_SCOPE,
            )
        self._assistant.enabled = not self._identity.lacks(ASSISTANT_SCOPE)
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
            await self._own_web.start(*self._listen)
        log.info("Slack events on %s (port %s)", EVENTS_PATH, self.http_port)

    async def stop(self) -> None:
        # Nothing is acknowledged from here on that this process will not answer: HTTP
        # events get 503 (Slack delivers them again, to the next process) and Socket
        # Mode disconnects first (Slack sends to the app's other connections).
        self._stopping = True
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        await self._chores.close()
        await self._notices.close()
        if self._own_web is not None:
            await self._own_web.stop()
            self._own_web = None

    async def close(self) -> None:
        """After the drain: the Web API's connections."""
        await self._http.close()

    async def ready(self) -> bool:
        """Readiness: Slack's Web API answers for this token right now."""
        try:
            await asyncio.wait_for(self._quick.auth_test(), READY_TIMEOUT)
        except SlackApiError as exc:
            # Slack answered: a rate limit still means it is reachable.
            return bool(exc.response.status_code == 429)
        return True

    def _not_serving(self) -> str | None:
        """Why HTTP events are refused now (503: Slack delivers them again), or None."""
        if self._stopping:
            return "stopping"
        return "starting" if self._identity is None else None

    # -- inbound ----------------------------------------------------------------

    async def _on_event(self, body: dict[str, Any]) -> None:
        change = changes.parse(body)
        if change is not None:
            await self._on_change(change)
            return
        message = inbound.parse(body)
        if message is None:
            return
        if body["event"].get("channel_type"):  # app_mention events do not say
            self._places.learn(message.channel, message.channel_type)
        key = ThreadKey("slack", message.team, message.channel, message.thread)
        place = self._order.place()  # taken on arrival, before anything waits
        try:
            # Only a message the bridge would answer is judged (channel chatter is not);
            # its asker is looked up while earlier events are still being queued.
            asker = None
            if (await self._decide(message, key)).answer:
                asker = await self._facts.asker(message, self._bridge.access)
            await place.turn()
            notice = await self._queue(message, key, asker)
        finally:
            place.done()
        if notice is not None:
            self._notices.post(message, notice)  # a refusal, where it was asked

    async def _on_change(self, change: changes.Edited | changes.Deleted) -> None:
        """A person edited or deleted a message: the core decides what it changes. An
        edit is judged as its message would be (``respond_to``, access), in delivery
        order with questions; the thread's question stays one when the edit drops the
        mention."""
        place = self._order.place()
        notice = None
        try:
            if isinstance(change, changes.Deleted):
                await place.turn()
                key = ThreadKey("slack", change.team, change.channel, change.thread)
                await self._bridge.retract(key, change.ts)
                return
            message = change.message
            key = ThreadKey("slack", message.team, message.channel, message.thread)
            decision = await self._decide(message, key)
            if not decision.answer:
                return
            asker = await self._facts.asker(message, self._bridge.access)
            await place.turn()
            event = replace(self._event(message, key, decision), event_id=change.edit_id)
            try:
                await self._bridge.edit(event, asker)
            except QuestionRefused as refused:
                notice = refused.notice
        finally:
            place.done()
        if notice is not None:
            self._notices.post(message, notice, in_thread=False)

    async def _queue(
        self, message: SlackMessage, key: ThreadKey, asker: Asker | None
    ) -> str | None:
        """Hand the question to the core; what to tell the asker, if anything."""
        decision = await self._decide(message, key)
        if not decision.answer:
            return None
        if asker is None:  # its thread became the bot's while earlier events queued
            asker = await self._facts.asker(message, self._bridge.access)
        event = self._event(message, key, decision)
        try:
            taken = await self._bridge.submit(event, asker)
        except QuestionRefused as refused:
            return refused.notice
        if taken is not None and message.is_dm and decision.needs_context:
            # The first question of a DM thread: in Slack's assistant view, its title.
            self._assistant.title(message.channel, message.thread, event.text)
        return None

    async def _decide(self, message: SlackMessage, key: ThreadKey) -> inbound.Decision:
        known = await self._bridge.knows_thread(key)
        respond_to = self._bridge.rules(message.channel).respond_to
        return inbound.decide(
            message, self.identity.user_id, known_thread=known, respond_to=respond_to
        )

    async def _on_reaction(self, body: dict[str, Any]) -> None:
        reaction = reactions.parse(body)
        if reaction is not None and reactions.wanted(reaction, self.identity.user_id):
            self._reactions.take(reaction)

    async def _on_assistant_thread(self, body: dict[str, Any]) -> None:
        """A person opened an assistant thread: offer the prompts set for it."""
        thread = assistant.started_thread(body)
        if thread is None or not self._bridge.access.allow_dms:
            return
        channel, ts = thread
        self._assistant.opened(channel, ts)
        self._assistant.suggest(channel, ts, self._bridge.rules(channel).suggested_prompts)

    async def _on_rename(self, body: dict[str, Any]) -> None:
        channel = body["event"].get("channel")
        if isinstance(channel, dict) and channel.get("id") and channel.get("name"):
            self._places.renamed(str(channel["id"]), str(channel["name"]))

    def _event(
        self, message: SlackMessage, key: ThreadKey, decision: inbound.Decision
    ) -> PlatformEvent:
        return PlatformEvent(
            event_id=message.delivery_id,
            thread=key,
            message_id=message.ts,
            author_id=message.user,
            author_name="",  # prepare() looks it up, inside the turn
            text=strip_bot_mention(message.text, self.identity.user_id),
            order=order_key(message.ts),
            needs_context=decision.needs_context,
            files=message.files,
            place=message.channel,
            direct=message.is_direct,
        )

    def download(self, file: FileRef) -> AsyncIterator[bytes]:
        """The file's bytes as Slack sends them, fetched with the bot token (``files``)."""
        return self._files.download(file)

    async def prepare(self, event: PlatformEvent) -> PlatformEvent:
        """Names, readable text, the place, a link to the thread, the thread so far and
        the details of Slack Connect files (``files.info``). An event that already has
        its author's name was prepared before: only what it lacks of the place (and its
        files) is filled in."""
        place = await self._place(event)
        files = await self._files.resolve(event.files)  # Slack Connect files: files.info
        if files != event.files:
            place = replace(place, files=files)
        if event.author_name:
            return place
        # A turn stored before events were kept has no author: nothing to look up.
        author = await self._facts.name(event.author_id) if event.author_id else ""
        text = decode_inbound(event.text, await self._names_in(event.text))
        context = event.context
        if event.needs_context and not context:
            context = await self._context(event)
        return replace(place, author_name=author, text=text, context=context)

    async def _place(self, event: PlatformEvent) -> PlatformEvent:
        """``event`` with the place's name ("#support", "DMs") and the thread's link."""
        name = event.place_name or await self._places.name(event.channel, direct=event.direct)
        link = event.link or thread_link(
            self.identity.url, event.thread.channel, event.thread.thread
        )
        if (name, link) == (event.place_name, event.link):
            return event
        return replace(event, place_name=name, link=link)

    async def _context(self, event: PlatformEvent) -> tuple[ContextMessage, ...]:
        """The thread before ``event`` (its newest ``CONTEXT_LIMIT`` messages), when the
        bot joins a thread it was not in. Slack pages a thread oldest first."""
        before: deque[dict[str, Any]] = deque(maxlen=CONTEXT_LIMIT)
        cursor = ""
        try:
            for _ in range(CONTEXT_PAGES):
                response = await self.client.conversations_replies(
                    channel=event.thread.channel,
                    ts=event.thread.thread,
                    limit=CONTEXT_LIMIT,
                    cursor=cursor or None,
                )
                messages = response.get("messages") or []
                before.extend(m for m in messages if _before(m, event.message_id))
                cursor = (response.get("response_metadata") or {}).get("next_cursor") or ""
                if not cursor or not all(_before(m, event.message_id) for m in messages):
                    break
        except CALL_ERRORS as exc:
            log.warning("cannot read thread %s: %s", event.thread.thread, describe(exc))
            return ()
        earlier = []
        for item in before:
            if item.get("subtype") == ASSISTANT_THREAD_SUBTYPE:
                continue  # the assistant thread's own opening message, not a say
            text = str(item.get("text") or "")
            from_bot = bool(item.get("bot_id"))
            name = "assistant" if from_bot else await self._facts.name(str(item.get("user") or "?"))
            earlier.append(
                ContextMessage(name, decode_inbound(text, await self._names_in(text)), from_bot)
            )
        return tuple(earlier)

    async def _names_in(self, text: str) -> dict[str, str]:
        return {uid: await self._facts.name(uid) for uid in mentioned_user_ids(text)}

    # -- replies ------------------------------------------------------------------

    def reply(
        self, event: PlatformEvent, message_ids: Sequence[str], save_ids: SaveMessageIds
    ) -> SlackReply:
        home = event.thread.workspace or self.identity.team_id
        known = self._facts.known(event.author_id)
        team = known.team if known is not None and known.team else home
        target = Target(
            workspace=home,
            channel=event.thread.channel,
            thread_ts=event.thread.thread,
            recipient_user_id=event.author_id,
            recipient_team_id=team,
            recipient=Recipient.TEAM if team == home else Recipient.EXTERNAL,
            turn=event.message_id,  # one per turn (a regenerate's is its own)
            question_ts=_ts_or_empty(event.asked_in),
            bot_user=self.identity.user_id,
            assistant=self._assistant.is_thread(event.thread.channel, event.thread.thread),
        )
        # A regenerated answer (or an edited question's) rewrites the finished answer it
        # replaces (no open stream).
        replacing = bool(event.regenerates or event.edits)
        return SlackReply(
            self._output, target, message_ids, save_ids, may_be_streaming=not replacing
        )


def _ts_or_empty(value: str) -> str:
    whole, dot, fraction = value.partition(".")
    return value if whole.isdigit() and dot and fraction.isdigit() else ""


def _before(message: dict[str, Any], message_id: str) -> bool:
    ts = str(message.get("ts") or "")
    return bool(ts) and order_key(ts) < order_key(message_id)


class InOrder:
    """One section at a time, in the order places were taken; what runs before a
    section (look-ups) runs for every event at once."""

    def __init__(self) -> None:
        self._last: asyncio.Future[None] | None = None

    def place(self) -> Place:
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        place = Place(self._last, mine)
        self._last = mine
        return place


@dataclass
class Place:
    before: asyncio.Future[None] | None
    mine: asyncio.Future[None]

    async def turn(self) -> None:
        """Wait until every earlier place is done."""
        if self.before is not None:
            await asyncio.shield(self.before)

    def done(self) -> None:
        """Let the next place go: now, or (if this one gave up waiting) after the earlier."""
        if self.before is None or self.before.done():
            _resolve(self.mine)
        else:
            self.before.add_done_callback(lambda _: _resolve(self.mine))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
