"""A local Slack-compatible server for tests: Web API, Socket Mode and signed HTTP events.

Point a real ``AsyncWebClient(base_url=fake.api_url)`` (and through it a Bolt ``AsyncApp``)
at it, then look at what a person would see with ``thread_view``. It runs in the test's own
event loop::

    fake = FakeSlack()
    await fake.start()
    client = AsyncWebClient(token="xoxb-test", base_url=fake.api_url)
    ...
    await fake.stop()

Behaviour taken from Slack is credited where it is implemented. Error names that could not be
confirmed against Slack's documentation are marked "unverified"; they are all configurable or
injectable with ``fail_next`` so a test never depends on the guess.

Faults a test can switch on (all off by default): ``stream_max_age`` (Slack ends native streams
by itself), ``stop_stream_by_user`` / ``user_stops_streams_after`` (a person presses stop),
``enforce_tiers`` (Slack's per-method rate tiers) and ``storm`` (every chat.* call 429s),
``hold`` / ``release`` (a call waits; if its client is gone by then it is never applied, as
with a killed process), ``delay`` (slow calls) and ``lose_response`` (the call is applied, its
answer never arrives: the connection drops, stalls or gets a 5xx). ``pings`` finds mentions
that would notify. ``api_connections`` counts the TCP connections Web API calls came on.

Message metadata (``chat.postMessage`` / ``chat.update`` / ``chat.stopStream``) is kept on the
message and returned by ``conversations.replies`` / ``history`` with ``include_all_metadata``.

People: ``add_user`` makes members, guests (``is_restricted`` / ``is_ultra_restricted``) and
users of another organisation (``team_id``); ``add_usergroup`` fills the user groups
``usergroups.users.list`` answers from (it needs the ``usergroups:read`` scope, as on Slack).
Notices only one person sees (``chat.postEphemeral``) are kept in ``ephemerals``, not in any
channel view. Events may carry ``files`` and ``user_team`` (what Slack Connect messages carry).

Places: ``add_channel`` names a channel (and says whether it is private or a group DM) for
``conversations.info``; ``rename_channel`` renames it and returns the ``channel_rename`` /
``group_rename`` event Slack sends. ``chat.getPermalink`` answers with the workspace URL of
``auth.test``.

Reactions: ``react`` / ``unreact`` change a message's reactions and return the
``reaction_added`` / ``reaction_removed`` event to deliver. Assistant threads:
``open_assistant_thread`` starts one (its ``assistant_thread_started`` event);
``assistant.threads.setSuggestedPrompts`` / ``setTitle`` are kept in ``suggested`` and
``titles``.

Files (``slack_files.py``): ``add_file`` makes a file a person shares (``user_says(files=…)``
takes them, or plain names); its bytes are served at ``url_private_download`` only for the bot
token with ``files:read``, else Slack's sign-in page. Slack Connect, deleted, expired, hidden
and external files behave as on Slack. ``files.getUploadURLExternal`` → POST →
``files.completeUploadExternal`` shares an upload as a bot message (``Message.files``) in the
channel or thread; ``file_data`` gives its bytes.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web

from tests.fakes import slack_delivery, slack_rules, slack_signing
from tests.fakes.gates import Gates
from tests.fakes.polling import wait_until
from tests.fakes.slack_delivery import Answer, Attempt, Delivery
from tests.fakes.slack_files import FileStore, StoredFile
from tests.fakes.slack_rules import TIER_LIMITS

JSON = dict[str, Any]

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
TEAM_ID = "T1"
APP_ID = "A1"
WORKSPACE_URL = "https://fake-team.slack.com/"
DEFAULT_SCOPES = (
    "app_mentions:read",
    "assistant:write",
    "channels:history",
    "channels:read",
    "chat:write",
    "files:read",
    "files:write",
    "groups:history",
    "groups:read",
    "im:history",
    "mpim:history",
    "mpim:read",
    "reactions:read",
    "users:read",
)
# Real Slack ts values are "seconds.microseconds"; start at a fixed, readable point.
_TS_ORIGIN_US = 1_700_000_000_000_000
_TS_STEP_US = 100
POST_BURST = 3
# Forms that notify people: broadcasts, user groups, users (U…, or W… on Enterprise Grid),
# each optionally with a "|label".
_PING = re.compile(
    r"<(?:!(?:channel|here|everyone)|!subteam\^[A-Z0-9]+|@[UW][A-Z0-9]+)(?:\|[^>]*)?>"
)
# Parameters Slack accepts as JSON strings in form-encoded bodies (slack_sdk sends them as JSON
# objects when it posts JSON, as strings when it posts forms).
_JSON_PARAMS = ("blocks", "chunks", "attachments", "metadata", "files")


class Call(NamedTuple):
    """One Web API call as the server saw it; unpacks as ``(method, params, at)``.

    ``params`` merges query string and body; the token (header or param) is under ``"token"``.
    ``at`` is ``time.monotonic()`` on arrival, for pacing assertions.
    """

    method: str
    params: JSON
    at: float


class Status(NamedTuple):
    channel: str
    thread_ts: str
    status: str
    at: float


class Suggested(NamedTuple):
    """One ``assistant.threads.setSuggestedPrompts`` call."""

    channel: str
    thread_ts: str
    prompts: list[JSON]  # [{"title", "message"}]
    at: float


class Ephemeral(NamedTuple):
    """A ``chat.postEphemeral`` message: only ``user`` sees it, in ``channel`` (and thread)."""

    channel: str
    user: str
    text: str
    thread_ts: str | None
    at: float


@dataclass
class Envelope:
    """A Socket Mode envelope sent to the app, and the app's ack if it came."""

    envelope_id: str
    payload: JSON
    retry_attempt: int
    retry_reason: str
    sent_at: float
    acked_at: float | None = None
    ack_payload: JSON | None = None


@dataclass
class Message:
    """One message as a person in the channel would see it."""

    channel: str
    ts: str
    user: str | None
    text: str  # what is visible now (see FakeSlack._visible)
    thread_ts: str | None = None  # set on replies only; parents get it in the Slack shape
    bot_id: str | None = None
    subtype: str | None = None
    blocks: list[JSON] | None = None
    streamed: bool = False  # created by chat.startStream
    streaming: bool = False  # stream open: chat.stopStream not called yet
    stream_started: float | None = None  # time.monotonic() of chat.startStream
    # Who ended the stream: "app" (chat.stopStream), "slack" (stream_max_age), "user" (stop).
    stream_ended_by: str | None = None
    deleted: bool = False
    # Every visible text this message has had, oldest first: post/start, then each
    # chat.update / chat.appendStream / chat.stopStream.
    versions: list[str] = field(default_factory=list)
    # Non-text stream chunks (task_update, plan_update, blocks) in arrival order.
    chunks: list[JSON] = field(default_factory=list)
    stream_parts: list[str] = field(default_factory=list)
    reactions: dict[str, list[str]] = field(default_factory=dict)  # name: users, in order
    metadata: JSON | None = None  # {"event_type", "event_payload"}, as the app last set it
    files: list[str] = field(default_factory=list)  # ids of the files shown with it

    @property
    def bot(self) -> bool:
        return self.bot_id is not None

    @property
    def updates(self) -> int:
        """How many times the visible text was changed after the message appeared."""
        return max(len(self.versions) - 1, 0)

    @property
    def stream_state(self) -> str | None:
        if not self.streamed:
            return None
        return "streaming" if self.streaming else "stopped"


@dataclass
class _Loss:
    """A call applied whose answer is lost: "drop" the connection, "stall" for ``seconds``
    (past the client's timeout), or answer with HTTP ``status`` (a 5xx)."""

    how: str
    seconds: float = 0.0
    status: int = 500
    when: Callable[[JSON], bool] | None = None


class SlackError(Exception):
    """Raised inside handlers to answer ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


Handler = Callable[[JSON], JSON]


class FakeSlack:
    """Slack Web API + Socket Mode server on 127.0.0.1, plus helpers to feed events."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.rate_limited: list[Call] = []  # calls answered 429 (also in ``calls``)
        self.scopes: list[str] = list(DEFAULT_SCOPES)  # the bot token's (xoxb-)
        self.app_scopes: list[str] = ["connections:write"]  # the app-level token's (xapp-)
        self.user_scopes: list[str] = []  # a user token's (xoxp-)
        self.users: dict[str, JSON] = {}
        self.channel_names: dict[str, str] = {}
        self.channel_kinds: dict[str, str] = {}  # "channel", "group" (private) or "mpim"
        self.statuses: list[Status] = []
        self.suggested: list[Suggested] = []
        self.titles: dict[tuple[str, str], str] = {}  # (channel, thread_ts): latest title
        self.ephemerals: list[Ephemeral] = []
        self.usergroups: dict[str, list[str]] = {}  # user group id: member user ids
        self.envelopes: list[Envelope] = []
        # Switches a test may flip.
        self.streaming_enabled = True
        # Unverified: what Slack answers chat.startStream where streaming is unavailable.
        self.streaming_disabled_error = "feature_not_enabled"
        self.valid_tokens: set[str] | None = None  # None: any token is accepted
        self.max_text_len = 40_000  # chat.postMessage docs: text truncated/refused past this
        self.max_markdown_len = 12_000  # markdown_text / markdown block limit (docs)
        # False: behave like a workspace that ignores markdown_text (so: no_text).
        self.markdown_text_enabled = True
        self.socket_connections = 0  # WebSockets ever accepted (reconnects count)
        # Slack sends each event to one of an app's open connections (several replicas share
        # the work); True: any one of them (seeded: runs repeat), False: the newest gets all.
        self.spread_events = False
        self._spread = random.Random(0)
        # Slack ends native streams by itself after about five minutes (undocumented; seen in
        # slack-sdk issue 1859). Seconds after chat.startStream; None: never.
        self.stream_max_age: float | None = None
        # A person presses stop on every stream older than this many seconds; None: never.
        self.user_stops_streams_after: float | None = None
        # Slack's tier limits (TIER_LIMITS per method per workspace, chat.postMessage per
        # channel); off by default. tier_window is "a minute": shorten it to provoke 429s fast.
        self.enforce_tiers = False
        self.tier_window = 60.0
        self._gates: Gates[Call] = Gates()  # holds and delays, by method
        self.held = self._gates.held  # calls waiting on a hold right now
        # Event delivery (slack_delivery.py): the app must ack within ack_deadline seconds, else
        # Slack delivers again, up to 3 times; retry_scale shortens the 1- and 5-minute waits.
        self.ack_deadline = slack_delivery.ACK_DEADLINE
        self.retry_scale = 1.0
        self.deliveries: list[Delivery] = []  # every deliver_event / send_event, in order
        self.dropped: list[Call] = []  # held calls whose client left: never applied
        self.lost: list[Call] = []  # calls applied whose answer the client never got
        self._peers: set[object] = set()  # client (host, port) of every Web API connection
        self._losses: dict[str, deque[_Loss]] = defaultdict(deque)

        self._tier_calls: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._post_buckets: dict[str, tuple[float, float]] = {}  # channel: (tokens, at)
        self._storm_until = 0.0

        self._messages: dict[str, list[Message]] = defaultdict(list)
        self._rate_limits: dict[str, deque[int]] = defaultdict(deque)
        self._failures: dict[str, deque[tuple[str, int]]] = defaultdict(deque)
        self._last_us = _TS_ORIGIN_US
        self._event_counter = 0
        self._sockets: list[web.WebSocketResponse] = []
        self._pending: dict[str, tuple[Envelope, asyncio.Future[None]]] = {}
        self._redeliveries: set[asyncio.Task[Delivery]] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.add_user(BOT_USER_ID, "owui-bot", is_bot=True)
        self.file_store = FileStore(TEAM_ID)  # files, their bytes, uploads (slack_files.py)
        self._handlers: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "apps.connections.open": self._connections_open,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.delete": self._delete,
            "chat.startStream": self._start_stream,
            "chat.appendStream": self._append_stream,
            "chat.stopStream": self._stop_stream,
            "assistant.threads.setStatus": self._set_status,
            "assistant.threads.setSuggestedPrompts": self._set_suggested_prompts,
            "assistant.threads.setTitle": self._set_title,
            "chat.getPermalink": self._permalink,
            "conversations.replies": self._replies,
            "conversations.history": self._history,
            "conversations.info": self._conversation_info,
            "users.info": self._users_info,
            "chat.postEphemeral": self._post_ephemeral,
            "usergroups.users.list": self._usergroup_users,
            "files.info": lambda params: self.file_store.info(
                _require(params, "file", "file_not_found")
            ),
            "files.getUploadURLExternal": self.file_store.upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }

    # -- lifecycle ------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def socket_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/socket"

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/socket", self._socket)
        app.router.add_get("/files-pri/{key}/{name}", self._file)
        app.router.add_get("/files-pri/{key}/download/{name}", self._file)
        app.router.add_get("/signin", self.file_store.sign_in)
        app.router.add_post("/upload/v1/{key}", self.file_store.receive)
        # A short shutdown timeout: open WebSockets must not hold stop() for a minute.
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.file_store.base = f"http://127.0.0.1:{self.port}"
        return self

    async def stop(self) -> None:
        for task in list(self._redeliveries):
            task.cancel()
        await self.close_sockets()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- configuration ----------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        display_name: str,
        *,
        real_name: str | None = None,
        name: str | None = None,
        is_bot: bool = False,
        team_id: str = TEAM_ID,
        is_restricted: bool = False,
        is_ultra_restricted: bool = False,
    ) -> JSON:
        """Add a user to the table users.info answers from (Slack's user object shape).

        ``is_restricted``: a multi-channel guest; ``is_ultra_restricted`` (with it, on
        Slack): a single-channel guest; another ``team_id``: a Slack Connect user.
        """
        real = real_name if real_name is not None else display_name
        user = {
            "id": user_id,
            "team_id": team_id,
            "name": name or display_name.lower().replace(" ", "."),
            "deleted": False,
            "real_name": real,
            "is_bot": is_bot,
            "is_restricted": is_restricted or is_ultra_restricted,
            "is_ultra_restricted": is_ultra_restricted,
            "profile": {
                "display_name": display_name,
                "display_name_normalized": display_name,
                "real_name": real,
                "real_name_normalized": real,
                "team": team_id,
            },
        }
        self.users[user_id] = user
        return user

    def add_channel(self, channel_id: str, name: str, *, kind: str = "channel") -> None:
        """A channel ``conversations.info`` names; ``kind`` "group" is a private channel,
        "mpim" a group DM (which has no name people see)."""
        self.channel_names[channel_id] = name
        self.channel_kinds[channel_id] = kind

    def rename_channel(self, channel_id: str, name: str) -> JSON:
        """Rename the channel; returns the event Slack sends its members' apps
        (``channel_rename``, or ``group_rename`` for a private channel)."""
        self.channel_names[channel_id] = name
        kind = self.channel_kinds.get(channel_id, "channel")
        event: JSON = {
            "type": "group_rename" if kind == "group" else "channel_rename",
            "channel": {
                "id": channel_id,
                "name": name,
                "name_normalized": name,
                "created": int(time.time()),
                "is_channel": kind == "channel",
                "is_mpim": False,
            },
            "event_ts": self._next_ts(),
        }
        return self.event_callback(event)

    def add_usergroup(self, group_id: str, members: list[str]) -> None:
        """A user group (``S…``) and its members, for usergroups.users.list."""
        self.usergroups[group_id] = list(members)

    def add_file(
        self, name: str, data: bytes | None = None, *, mimetype: str | None = None, **options: Any
    ) -> StoredFile:
        """A file a person shares (pass it in ``user_says(files=[…])``). ``options``: see
        ``slack_files.StoredFile`` (``mode``, ``connect``, ``info_refused``, ``removed``)."""
        return self.file_store.add(name, data, mimetype=mimetype, **options)

    def file_data(self, file_id: str) -> bytes:
        """The bytes Slack holds for a file (an upload's, say)."""
        return self.file_store.files[file_id].data

    def rate_limit_next(self, method: str, retry_after: int = 1, *, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with HTTP 429 + ``Retry-After``."""
        self._rate_limits[method].extend([retry_after] * times)

    def fail_next(self, method: str, error: str, *, times: int = 1, status: int = 200) -> None:
        """Answer the next ``times`` calls of ``method`` with ``{"ok": false, "error": error}``.

        Slack answers most errors with HTTP 200; pass ``status`` for 5xx-style failures.
        """
        self._failures[method].extend([(error, status)] * times)

    def storm(self, seconds: float) -> None:
        """Answer every chat.* call with 429 for ``seconds`` (Retry-After: time left)."""
        self._storm_until = time.monotonic() + seconds

    def hold(self, method: str, when: Callable[[JSON], object] | None = None) -> None:
        """Make calls of ``method`` (those whose params satisfy ``when``) wait for ``release``.

        A held call whose HTTP client went away meanwhile is never applied: it lands in
        ``dropped``, which is how the last call of a killed process looks to Slack.
        """
        self._gates.hold(method, _on_params(when))

    def release(self, method: str) -> None:
        """Let every held call of ``method`` proceed; later calls are not held."""
        self._gates.release(method)

    def release_all(self) -> None:
        """Release every hold (a test's clean-up: a stopping process must not hang on one)."""
        self._gates.release_all()

    def delay(
        self, method: str, seconds: float, when: Callable[[JSON], object] | None = None
    ) -> None:
        """Make calls of ``method`` (matching ``when``) wait ``seconds``, then proceed.

        Stays until ``delay(method, 0)`` clears every delay of ``method``.
        """
        self._gates.delay(method, seconds, _on_params(when))

    def lose_response(
        self,
        method: str,
        how: str = "drop",
        *,
        times: int = 1,
        seconds: float = 0.0,
        status: int = 500,
        when: Callable[[JSON], object] | None = None,
    ) -> None:
        """Apply the next ``times`` calls of ``method`` (matching ``when``) and lose their
        answer: ``"drop"`` closes the connection, ``"stall"`` answers only after ``seconds``
        (set it past the client's timeout), ``"status"`` answers HTTP ``status``."""
        if how not in ("drop", "stall", "status"):
            raise ValueError(how)
        loss = _Loss(how, seconds, status, _predicate(when))
        self._losses[method].extend([loss] * times)

    @property
    def api_connections(self) -> int:
        """TCP connections Web API calls arrived on (one per call without keep-alive)."""
        return len(self._peers)

    def stop_stream_by_user(self, channel: str, ts: str) -> None:
        """A person presses stop on a streamed message: it keeps what it shows."""
        message = self.message(channel, ts)
        if message is None or not message.streaming:
            raise ValueError(f"FakeSlack: no open stream at {channel}/{ts}")
        self._end_stream(message, "user")

    # -- what happened ----------------------------------------------------------

    def count(self, method: str) -> int:
        return sum(1 for call in self.calls if call.method == method)

    def calls_of(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def message(self, channel: str, ts: str) -> Message | None:
        self._expire_streams()
        for message in self._messages[channel]:
            if message.ts == ts:
                return message
        return None

    def channel_view(self, channel: str) -> list[Message]:
        """Every visible message in the channel (top level and replies), ordered by ts."""
        self._expire_streams()
        return sorted(
            (m for m in self._messages[channel] if not m.deleted), key=lambda m: _ts_us(m.ts)
        )

    def thread_view(self, channel: str, thread_ts: str) -> list[Message]:
        """The thread's parent and replies, ordered by ts, deleted ones left out."""
        return [
            m for m in self.channel_view(channel) if m.ts == thread_ts or m.thread_ts == thread_ts
        ]

    def bot_replies(self, channel: str, thread_ts: str) -> list[Message]:
        """The bot's own messages in the thread (the parent excluded)."""
        return [
            m
            for m in self.thread_view(channel, thread_ts)
            if m.bot_id == BOT_ID and m.ts != thread_ts
        ]

    def pings(self, channel: str) -> list[tuple[Message, str]]:
        """The bot's messages in ``channel`` that would notify someone, with the form found.

        Looks at every version a person may have seen: ``<!channel>``, ``<!here>``,
        ``<!everyone>``, ``<!subteam^…>`` and ``<@U…>`` / ``<@W…>`` (with or without a label).
        Escaped text (``&lt;!channel&gt;``) or a broken form does not count.
        """
        found: list[tuple[Message, str]] = []
        for message in self.channel_view(channel):
            if message.bot_id != BOT_ID:
                continue
            forms = {m.group(0) for text in message.versions for m in _PING.finditer(text)}
            found.extend((message, form) for form in sorted(forms))
        return found

    def ephemerals_to(self, user: str) -> list[Ephemeral]:
        """The notices shown to ``user`` alone, oldest first."""
        return [e for e in self.ephemerals if e.user == user]

    def status_of(self, channel: str, thread_ts: str) -> str | None:
        """The last assistant.threads.setStatus status for the thread (``""`` = cleared)."""
        for status in reversed(self.statuses):
            if status.channel == channel and status.thread_ts == thread_ts:
                return status.status
        return None

    async def wait_for(
        self, predicate: Callable[[], object], *, timeout: float = 5.0, what: str = "condition"
    ) -> None:
        """Poll ``predicate`` until truthy; Bolt runs listeners after the ack, so tests wait."""
        await wait_until(predicate, timeout=timeout, what=what, who="FakeSlack")

    async def wait_for_calls(
        self, method: str, count: int = 1, *, timeout: float = 5.0
    ) -> list[Call]:
        await self.wait_for(
            lambda: self.count(method) >= count, timeout=timeout, what=f"{count}x {method}"
        )
        return self.calls_of(method)

    # -- Web API ----------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _read_params(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() or str(params.get("token") or "")
        if token:
            params["token"] = token
        call = Call(method, params, time.monotonic())
        self.calls.append(call)
        if request.transport is not None:
            self._peers.add(request.transport.get_extra_info("peername"))

        if not await self._pass_gates(call, request):
            self.dropped.append(call)
            # Nobody reads this; the client is gone.
            return self._json({"ok": False, "error": "client_gone"}, status=499)
        self._expire_streams()
        retry_after = self._retry_after(call)
        if retry_after is not None:
            self.rate_limited.append(call)
            return self._json(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(retry_after)},
            )
        if self._rate_limits[method]:
            # Slack: HTTP 429, Retry-After in seconds, body error "ratelimited".
            retry_after = self._rate_limits[method].popleft()
            self.rate_limited.append(call)
            return self._json(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(retry_after)},
            )
        if self._failures[method]:
            error, status = self._failures[method].popleft()
            return self._json({"ok": False, "error": error}, status=status)
        handler = self._handlers.get(method)
        if handler is None:
            # Slack answers a method it does not have (a typo, say) with HTTP 200 and this.
            return self._json({"ok": False, "error": "unknown_method"})
        refused = self._refusal(method, token, params)
        if refused is not None:
            return self._json(refused, scopes=self._granted(token))
        try:
            body = handler(params)
        except SlackError as exc:
            body = {"ok": False, "error": exc.error}
        loss = self._loss(call)
        if loss is not None and body.get("ok"):
            return await self._lose(call, loss, request, body, token)
        return self._json(body, scopes=self._granted(token))

    def _loss(self, call: Call) -> _Loss | None:
        losses = self._losses.get(call.method)
        for loss in list(losses or ()):
            if loss.when is None or loss.when(call.params):
                losses.remove(loss)  # type: ignore[union-attr]
                return loss
        return None

    async def _lose(
        self, call: Call, loss: _Loss, request: web.Request, body: JSON, token: str
    ) -> web.Response:
        """The call was applied; its answer does not reach the client."""
        self.lost.append(call)
        if loss.how == "status":
            return self._json({"ok": False, "error": "internal_error"}, status=loss.status)
        if loss.how == "stall":
            await asyncio.sleep(loss.seconds)
            return self._json(body, scopes=self._granted(token))
        if request.transport is not None:
            request.transport.abort()  # the connection resets; this answer goes nowhere
        return self._json(body, scopes=self._granted(token))

    async def _pass_gates(self, call: Call, request: web.Request) -> bool:
        """Apply delays and holds; False if the client left while the call waited."""
        try:
            if not await self._gates.pass_through((call.method,), call):
                return True
        except asyncio.CancelledError:
            # aiohttp cancels the handler when the connection is lost (if configured to).
            self.dropped.append(call)
            raise
        transport = request.transport
        return transport is not None and not transport.is_closing()

    def _retry_after(self, call: Call) -> int | None:
        """Seconds to wait if the storm or Slack's tiers refuse ``call``, else None (counted)."""
        now = time.monotonic()  # not call.at: a held or delayed call counts when it runs
        if call.method.startswith("chat.") and now < self._storm_until:
            return max(1, math.ceil(self._storm_until - now))
        if not self.enforce_tiers:
            return None
        if call.method == "chat.postMessage":
            return self._take_post_token(str(call.params.get("channel") or ""), now)
        limit = TIER_LIMITS.get(call.method)
        if limit is None:
            return None
        # Every token of this server belongs to one workspace (TEAM_ID).
        window = self._tier_calls[(call.method, TEAM_ID)]
        while window and window[0] <= now - self.tier_window:
            window.popleft()
        if len(window) >= limit:
            return max(1, math.ceil(window[0] + self.tier_window - now))
        window.append(now)
        return None

    def _take_post_token(self, channel: str, now: float) -> int | None:
        # A token bucket: POST_BURST at once, refilled at one a second (scaled with the window).
        interval = self.tier_window / 60.0
        tokens, at = self._post_buckets.get(channel, (float(POST_BURST), now))
        tokens = min(float(POST_BURST), tokens + (now - at) / interval)
        if tokens < 1.0:
            self._post_buckets[channel] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) * interval))
        self._post_buckets[channel] = (tokens - 1.0, now)
        return None

    def _json(
        self,
        body: JSON,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        scopes: list[str] | None = None,
    ) -> web.Response:
        # Slack sends the calling token's scopes on every Web API response.
        granted = self.scopes if scopes is None else scopes
        all_headers = {"x-oauth-scopes": ",".join(granted), **(headers or {})}
        return web.json_response(body, status=status, headers=all_headers)

    # -- tokens and scopes (the rules live in slack_rules.py) ----------------------------

    def _granted(self, token: str) -> list[str]:
        kind = slack_rules.token_kind(token)
        if kind == slack_rules.APP:
            return self.app_scopes
        if kind == slack_rules.USER:
            return self.user_scopes
        return self.scopes

    def _refusal(self, method: str, token: str, params: JSON) -> JSON | None:
        """Slack's answer to a call its token may not make (see slack_rules), else None."""
        if not token:
            return {"ok": False, "error": "not_authed"}
        kind = slack_rules.token_kind(token)
        if kind is None or (self.valid_tokens is not None and token not in self.valid_tokens):
            return {"ok": False, "error": "invalid_auth"}
        channel = str(params.get("channel") or params.get("channel_id") or "")
        return slack_rules.refusal(method, kind, self._granted(token), self._kind(channel))

    def _kind(self, channel: str) -> str:
        """The conversation's type as Slack's scopes split them: channel, group, im, mpim."""
        if channel.startswith("D"):
            return "im"
        return self.channel_kinds.get(channel, "group" if channel.startswith("G") else "channel")

    async def _file(self, request: web.Request) -> web.StreamResponse:
        """``url_private(_download)``: the bytes for a bot token holding files:read."""
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        authorised = (
            bool(token)
            and self._refusal("files.info", token, {}) is None
            and slack_rules.token_kind(token) != slack_rules.APP
        )
        return await self.file_store.serve(request, authorised)

    def _complete_upload(self, params: JSON) -> JSON:
        body, done = self.file_store.complete(params, BOT_USER_ID)
        channel = _opt_str(params, "channel_id") or _opt_str(params, "channels")
        if done and channel:
            # Shared: a message of the bot's in the channel (or thread) showing the files.
            message = Message(
                channel=channel,
                ts=self._next_ts(),
                user=BOT_USER_ID,
                text=str(params.get("initial_comment") or ""),
                thread_ts=_opt_str(params, "thread_ts"),
                bot_id=BOT_ID,
                files=[f.id for f in done],
            )
            message.versions.append(message.text)
            self._messages[channel].append(message)
        return body

    def _auth_test(self, params: JSON) -> JSON:
        return {
            "ok": True,
            "url": WORKSPACE_URL,
            "team": "Fake Team",
            "user": self.users[BOT_USER_ID]["name"],
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _connections_open(self, params: JSON) -> JSON:
        return {"ok": True, "url": f"{self.socket_url}?ticket={uuid.uuid4()}&app_id={APP_ID}"}

    def _post_message(self, params: JSON) -> JSON:
        channel = _require(params, "channel", "channel_not_found")
        blocks = self._check_content(params)
        thread_ts = _opt_str(params, "thread_ts")
        message = Message(
            channel=channel,
            ts=self._next_ts(),
            user=BOT_USER_ID,
            text=_visible(params),
            thread_ts=thread_ts,
            bot_id=BOT_ID,
            blocks=blocks,
        )
        message.versions.append(message.text)
        _keep_metadata(message, params)
        self._messages[channel].append(message)
        return {
            "ok": True,
            "channel": channel,
            "ts": message.ts,
            "message": self._slack_shape(message, metadata=True),
        }

    def _update(self, params: JSON) -> JSON:
        message = self._own_message(params, "cant_update_message")
        if message.streaming:
            # Unverified error name; Slack does not let a live stream be edited under it.
            raise SlackError("streaming_state_conflict")
        blocks = self._check_content(params)
        # Replace semantics: the new call's content is the whole message.
        message.blocks = blocks
        message.text = _visible(params)
        message.versions.append(message.text)
        _keep_metadata(message, params)
        return {
            "ok": True,
            "channel": message.channel,
            "ts": message.ts,
            "text": message.text,
            "message": self._slack_shape(message),
        }

    def _delete(self, params: JSON) -> JSON:
        message = self._own_message(params, "cant_delete_message")
        message.deleted = True
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _start_stream(self, params: JSON) -> JSON:
        if not self.streaming_enabled:
            raise SlackError(self.streaming_disabled_error)
        channel = _require(params, "channel", "channel_not_found")
        thread_ts = _require(params, "thread_ts", "invalid_arguments")
        # Slack requires both recipients outside DMs (docs: "Required when streaming to
        # channels"); it reports the team first, then the user (seen in the wild, e.g.
        # openclaw/openclaw#21213), and also for private channels and group DMs.
        if not channel.startswith("D"):
            if not params.get("recipient_team_id"):
                raise SlackError("missing_recipient_team_id")
            if not params.get("recipient_user_id"):
                raise SlackError("missing_recipient_user_id")
        text, chunks = self._stream_delta(params)
        message = Message(
            channel=channel,
            ts=self._next_ts(),
            user=BOT_USER_ID,
            text=text,
            thread_ts=thread_ts,
            bot_id=BOT_ID,
            streamed=True,
            streaming=True,
            stream_started=time.monotonic(),
            stream_parts=[text],
            chunks=chunks,
        )
        message.versions.append(text)
        self._messages[channel].append(message)
        return {"ok": True, "channel": channel, "ts": message.ts}

    def _append_stream(self, params: JSON) -> JSON:
        stopped = self._own_message(params, "message_not_found")
        if stopped.stream_ended_by == "user":
            # Unverified: Slack's docs list stopped_by_user without saying for how long; here
            # every later append gets it, while chat.stopStream gets not_in_streaming_state.
            raise SlackError("stopped_by_user")
        message = self._streaming_message(params)
        self._extend_stream(message, params)
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _stop_stream(self, params: JSON) -> JSON:
        message = self._streaming_message(params)
        self._extend_stream(message, params)
        blocks = params.get("blocks")
        if isinstance(blocks, list) and blocks:
            _check_blocks(blocks, self.max_markdown_len)
            message.blocks = blocks  # rendered under the streamed text
        _keep_metadata(message, params)
        self._end_stream(message, "app")
        return {
            "ok": True,
            "channel": message.channel,
            "ts": message.ts,
            "message": self._slack_shape(message),
        }

    def _set_status(self, params: JSON) -> JSON:
        channel = _require(params, "channel_id", "channel_not_found")
        thread_ts = _require(params, "thread_ts", "invalid_arguments")
        self.statuses.append(
            Status(channel, thread_ts, str(params.get("status", "")), time.monotonic())
        )
        return {"ok": True}

    def _replies(self, params: JSON) -> JSON:
        channel = _require(params, "channel", "channel_not_found")
        ts = _require(params, "ts", "thread_not_found")
        found = self.message(channel, ts)
        if found is None or found.deleted:
            raise SlackError("thread_not_found")
        # The ts may name the parent or any reply: both give the whole thread.
        thread = self.thread_view(channel, found.thread_ts or found.ts)
        oldest = _opt_str(params, "oldest")
        if oldest is not None:  # only messages after it (``inclusive`` is false by default)
            thread = [m for m in thread if _ts_us(m.ts) > _ts_us(oldest)]
        meta = _flag(params, "include_all_metadata")
        return self._page([self._slack_shape(m, metadata=meta) for m in thread], params)

    def _history(self, params: JSON) -> JSON:
        channel = _require(params, "channel", "channel_not_found")
        top = [m for m in self.channel_view(channel) if m.thread_ts in (None, m.ts)]
        meta = _flag(params, "include_all_metadata")
        return self._page([self._slack_shape(m, metadata=meta) for m in reversed(top)], params)

    def _conversation_info(self, params: JSON) -> JSON:
        channel = _require(params, "channel", "channel_not_found")
        is_im = channel.startswith("D")
        kind = self.channel_kinds.get(channel, "group" if channel.startswith("G") else "channel")
        info: JSON = {
            "id": channel,
            "is_channel": kind == "channel" and not is_im,
            "is_group": kind == "group",
            "is_im": is_im,
            "is_mpim": kind == "mpim",
            "is_private": is_im or kind != "channel",
            "is_member": True,
        }
        if kind == "mpim":
            info["name"] = f"mpdm-{channel.lower()}-1"  # Slack's internal name, not shown
        elif not is_im:
            info["name"] = self.channel_names.get(channel, channel.lower())
        return {"ok": True, "channel": info}

    def _set_suggested_prompts(self, params: JSON) -> JSON:
        channel = _require(params, "channel_id", "channel_not_found")
        thread_ts = _require(params, "thread_ts", "invalid_arguments")
        prompts = params.get("prompts")
        if isinstance(prompts, str):
            prompts = json.loads(prompts)
        # Slack's reference: 1 to 4 prompts, each with a title and a message.
        if not isinstance(prompts, list) or not 1 <= len(prompts) <= 4:
            raise SlackError("invalid_arguments")
        if not all(isinstance(p, dict) and p.get("title") and p.get("message") for p in prompts):
            raise SlackError("invalid_arguments")
        self.suggested.append(Suggested(channel, thread_ts, prompts, time.monotonic()))
        return {"ok": True}

    def _set_title(self, params: JSON) -> JSON:
        channel = _require(params, "channel_id", "channel_not_found")
        thread_ts = _require(params, "thread_ts", "invalid_arguments")
        self.titles[(channel, thread_ts)] = _require(params, "title", "invalid_arguments")
        return {"ok": True}

    def _permalink(self, params: JSON) -> JSON:
        channel = _require(params, "channel", "channel_not_found")
        ts = _require(params, "message_ts", "message_not_found")
        found = self.message(channel, ts)
        if found is None or found.deleted:
            raise SlackError("message_not_found")
        link = f"{WORKSPACE_URL}archives/{channel}/p{ts.replace('.', '')}"
        if found.thread_ts is not None and found.thread_ts != ts:
            link += f"?thread_ts={found.thread_ts}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": link}

    def _users_info(self, params: JSON) -> JSON:
        user = self.users.get(str(params.get("user", "")))
        if user is None:
            raise SlackError("user_not_found")
        return {"ok": True, "user": user}

    def _post_ephemeral(self, params: JSON) -> JSON:
        channel = _require(params, "channel", "channel_not_found")
        user = _require(params, "user", "user_not_found")
        text = _visible(params)
        if not text:
            raise SlackError("no_text")
        self.ephemerals.append(
            Ephemeral(channel, user, text, _opt_str(params, "thread_ts"), time.monotonic())
        )
        # Slack answers with a ts that names no message anyone else can see.
        return {"ok": True, "message_ts": self._next_ts()}

    def _usergroup_users(self, params: JSON) -> JSON:
        group = _require(params, "usergroup", "invalid_arguments")
        if group not in self.usergroups:
            raise SlackError("no_such_subteam")
        return {"ok": True, "users": list(self.usergroups[group])}

    # -- Web API helpers --------------------------------------------------------

    def _next_ts(self) -> str:
        self._last_us += _TS_STEP_US
        return _format_ts(self._last_us)

    def _own_message(self, params: JSON, not_yours: str) -> Message:
        channel = _require(params, "channel", "channel_not_found")
        message = self.message(channel, _require(params, "ts", "message_not_found"))
        if message is None or message.deleted:
            raise SlackError("message_not_found")
        if message.bot_id != BOT_ID:
            raise SlackError(not_yours)
        return message

    def _expire_streams(self) -> None:
        """End streams Slack (``stream_max_age``) or a person (``user_stops_…``) would have."""
        if self.stream_max_age is None and self.user_stops_streams_after is None:
            return
        now = time.monotonic()
        for messages in self._messages.values():
            for message in messages:
                if not message.streaming or message.stream_started is None:
                    continue
                age = now - message.stream_started
                if self.user_stops_streams_after is not None and (
                    age >= self.user_stops_streams_after
                ):
                    self._end_stream(message, "user")
                elif self.stream_max_age is not None and age >= self.stream_max_age:
                    self._end_stream(message, "slack")

    @staticmethod
    def _end_stream(message: Message, by: str) -> None:
        # The text streamed so far stays; the message is now ordinary (chat.update works).
        message.streaming = False
        message.stream_ended_by = by

    def _streaming_message(self, params: JSON) -> Message:
        message = self._own_message(params, "message_not_found")
        if not message.streaming:
            # chat.appendStream / chat.stopStream docs list this error.
            raise SlackError("message_not_in_streaming_state")
        return message

    def _check_content(self, params: JSON) -> list[JSON] | None:
        """Slack's content rules for chat.postMessage / chat.update."""
        text = params.get("text")
        markdown = params.get("markdown_text") if self.markdown_text_enabled else None
        blocks = params.get("blocks")
        if not text and not markdown and not blocks and not params.get("attachments"):
            raise SlackError("no_text")
        if isinstance(text, str) and len(text) > self.max_text_len:
            raise SlackError("msg_too_long")
        if isinstance(markdown, str) and len(markdown) > self.max_markdown_len:
            raise SlackError("msg_too_long")
        if blocks is None:
            return None
        if not isinstance(blocks, list):
            raise SlackError("invalid_blocks_format")
        _check_blocks(blocks, self.max_markdown_len)
        return blocks

    def _stream_delta(self, params: JSON) -> tuple[str, list[JSON]]:
        """Text a stream call adds: ``markdown_text`` and/or ``markdown_text`` chunks.

        slack_sdk's ``chat_stream()`` helper sends ``chunks=[{"type": "markdown_text",
        "text": ...}]``; direct calls usually send ``markdown_text``.
        """
        parts: list[str] = []
        markdown = params.get("markdown_text")
        if isinstance(markdown, str):
            if len(markdown) > self.max_markdown_len:
                raise SlackError("msg_too_long")
            parts.append(markdown)
        other: list[JSON] = []
        for chunk in params.get("chunks") or []:
            if isinstance(chunk, dict) and chunk.get("type") == "markdown_text":
                parts.append(str(chunk.get("text", "")))
            elif isinstance(chunk, dict):
                other.append(chunk)
        return "".join(parts), other

    def _extend_stream(self, message: Message, params: JSON) -> None:
        text, chunks = self._stream_delta(params)
        message.chunks.extend(chunks)
        if text:
            message.stream_parts.append(text)
            message.text = "".join(message.stream_parts)
            message.versions.append(message.text)

    def _slack_shape(self, message: Message, *, metadata: bool = False) -> JSON:
        """The message object conversations.replies / chat.postMessage return (with its
        ``metadata`` when asked: ``include_all_metadata``)."""
        shape: JSON = {"type": "message", "text": message.text, "ts": message.ts, "team": TEAM_ID}
        if metadata and message.metadata is not None:
            shape["metadata"] = message.metadata
        if message.user is not None:
            shape["user"] = message.user
        if message.bot_id is not None:
            shape["bot_id"] = message.bot_id
            shape["app_id"] = APP_ID if message.bot_id == BOT_ID else "A_OTHER"
        if message.subtype is not None:
            shape["subtype"] = message.subtype
        if message.blocks is not None:
            shape["blocks"] = message.blocks
        if message.files:
            shape["files"] = [
                self.file_store.shape(self.file_store.files[f]) for f in message.files
            ]
            shape["upload"] = True
        if message.thread_ts is not None and message.thread_ts != message.ts:
            shape["thread_ts"] = message.thread_ts
            parent = self.message(message.channel, message.thread_ts)
            if parent is not None and parent.user is not None:
                shape["parent_user_id"] = parent.user
        else:
            replies = [m for m in self.channel_view(message.channel) if m.thread_ts == message.ts]
            if replies:
                # Slack marks a thread parent with its own ts as thread_ts.
                shape["thread_ts"] = message.ts
                shape["reply_count"] = len(replies)
                shape["reply_users"] = sorted({m.user for m in replies if m.user})
                shape["reply_users_count"] = len(shape["reply_users"])
                shape["latest_reply"] = replies[-1].ts
        return shape

    @staticmethod
    def _page(messages: list[JSON], params: JSON) -> JSON:
        # Cursor pagination like Slack's: an opaque next_cursor, "" at the end.
        start = int(params.get("cursor") or 0)
        limit = int(params.get("limit") or 1000)
        page = messages[start : start + limit]
        more = start + limit < len(messages)
        return {
            "ok": True,
            "messages": page,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    # -- users' messages and event payloads -------------------------------------------

    def user_says(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        channel_type: str | None = None,
        ts: str | None = None,
        files: Sequence[str | StoredFile] | None = None,
        user_team: str | None = None,
    ) -> tuple[str, JSON, JSON | None]:
        """A person posts ``text``: store it and return what Slack would deliver.

        Returns ``(ts, message_event_body, app_mention_body_or_None)``. Slack sends both a
        ``message`` and an ``app_mention`` event (different event_ids) when a channel message
        mentions the bot; in DMs it sends only the ``message`` event. ``files``: names of
        files sent with the message; ``user_team``: the author's home team, as events from
        another organisation's user (Slack Connect) carry it.
        """
        ts = self._claim_ts(ts)
        stored = [self._stored(f, user) for f in files or ()]
        files = stored or None
        message = Message(channel=channel, ts=ts, user=user, text=text, thread_ts=thread_ts)
        message.files = [f.id for f in stored]
        message.versions.append(text)
        self._messages[channel].append(message)
        extra = {"files": files, "user_team": user_team}
        message_body = self.message_event(
            channel, user, text, ts=ts, thread_ts=thread_ts, channel_type=channel_type, **extra
        )
        mention_body = None
        if f"<@{BOT_USER_ID}>" in text and not channel.startswith("D"):
            mention_body = self.app_mention_event(
                channel, user, text, ts=ts, thread_ts=thread_ts, **extra
            )
        return ts, message_body, mention_body

    def message_event(
        self,
        channel: str,
        user: str | None,
        text: str,
        *,
        ts: str | None = None,
        thread_ts: str | None = None,
        channel_type: str | None = None,
        bot_id: str | None = None,
        subtype: str | None = None,
        files: Sequence[str | StoredFile] | None = None,
        user_team: str | None = None,
    ) -> JSON:
        """An ``event_callback`` body carrying a ``message`` event (not stored).

        ``channel_type`` defaults from the id: D… im, G… group, else channel. For the bot's
        own echo pass ``user=BOT_USER_ID, bot_id=BOT_ID``; for another bot's post pass its
        ``bot_id`` (and ``subtype="bot_message"`` for legacy integrations). A message with
        ``files`` has the ``file_share`` subtype, as on Slack.
        """
        ts = ts or self._next_ts()
        if files and subtype is None and bot_id is None:
            subtype = "file_share"
        event: JSON = {
            "type": "message",
            "channel": channel,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "team": TEAM_ID,
            "channel_type": channel_type or _channel_type(channel),
        }
        if user is not None:
            event["user"] = user
        if bot_id is None and subtype in (None, "file_share"):
            event["client_msg_id"] = str(uuid.uuid4())  # only people's messages carry one
        if bot_id is not None:
            event["bot_id"] = bot_id
            event["app_id"] = APP_ID if bot_id == BOT_ID else "A_OTHER"
            event["bot_profile"] = {"id": bot_id, "app_id": event["app_id"], "team_id": TEAM_ID}
        if subtype is not None:
            event["subtype"] = subtype
        _add_person(event, [self._event_file(f, user) for f in files or ()], user_team)
        self._add_thread(event, channel, thread_ts)
        return self.event_callback(event)

    def app_mention_event(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        ts: str | None = None,
        thread_ts: str | None = None,
        files: Sequence[str | StoredFile] | None = None,
        user_team: str | None = None,
    ) -> JSON:
        """An ``event_callback`` body carrying an ``app_mention`` (text should hold <@UBOT>)."""
        ts = ts or self._next_ts()
        event: JSON = {
            "type": "app_mention",
            "user": user,
            "text": text,
            "ts": ts,
            "client_msg_id": str(uuid.uuid4()),
            "team": TEAM_ID,
            "channel": channel,
            "event_ts": ts,
        }
        _add_person(event, [self._event_file(f, user) for f in files or ()], user_team)
        self._add_thread(event, channel, thread_ts)
        return self.event_callback(event)

    def user_edits(self, channel: str, ts: str, text: str) -> JSON:
        """The author edits their message to read ``text``: store it and return Slack's
        ``message_changed`` body (the message as it reads now, with ``edited``; the one
        before in ``previous_message``; the event's own ts is the edit's)."""
        message = self._reacted(channel, ts)
        before = self._person_shape(message)
        message.text = text
        message.versions.append(text)
        edited_ts = self._next_ts()
        after = {**before, "text": text, "edited": {"user": message.user, "ts": edited_ts}}
        return self._changed(channel, edited_ts, after, before)

    def unfurl(self, channel: str, ts: str) -> JSON:
        """Slack adds a link preview to a message: ``message_changed`` with the same
        text, an ``attachments`` list, and no ``edited``."""
        message = self._reacted(channel, ts)
        before = self._person_shape(message)
        after = {
            **before,
            "attachments": [{"from_url": "https://example.com", "title": "Example"}],
        }
        return self._changed(channel, self._next_ts(), after, before)

    def user_deletes(self, channel: str, ts: str) -> JSON:
        """The author deletes their message: Slack's ``message_deleted`` body."""
        message = self._reacted(channel, ts)
        before = self._person_shape(message)
        message.deleted = True
        event_ts = self._next_ts()
        event: JSON = {
            "type": "message",
            "subtype": "message_deleted",
            "hidden": True,
            "channel": channel,
            "ts": event_ts,
            "deleted_ts": ts,
            "event_ts": event_ts,
            "channel_type": _channel_type(channel),
            "previous_message": before,
        }
        return self.event_callback(event)

    def _changed(self, channel: str, ts: str, after: JSON, before: JSON) -> JSON:
        event: JSON = {
            "type": "message",
            "subtype": "message_changed",
            "hidden": True,
            "channel": channel,
            "ts": ts,
            "event_ts": ts,
            "channel_type": _channel_type(channel),
            "message": after,
            "previous_message": before,
        }
        return self.event_callback(event)

    def _person_shape(self, message: Message) -> JSON:
        """A person's message as ``message_changed`` / ``message_deleted`` carry it."""
        shape: JSON = {
            "type": "message",
            "user": message.user,
            "text": message.text,
            "ts": message.ts,
            "team": TEAM_ID,
        }
        if message.bot_id is not None:
            shape["bot_id"] = message.bot_id
        self._add_thread(shape, message.channel, message.thread_ts)
        return shape

    def _stored(self, file: str | StoredFile, user: str | None) -> StoredFile:
        return file if isinstance(file, StoredFile) else self.add_file(file, user=user or "U1")

    def _event_file(self, file: str | StoredFile, user: str | None) -> JSON:
        return self.file_store.event_shape(self._stored(file, user))

    def react(self, channel: str, ts: str, user: str, name: str) -> JSON:
        """``user`` adds reaction ``name`` (e.g. "+1", "repeat") to a message; returns the
        ``reaction_added`` event Slack delivers (also when the reaction was there)."""
        message = self._reacted(channel, ts)
        users = message.reactions.setdefault(name, [])
        if user not in users:
            users.append(user)
        return self.reaction_event(channel, ts, user, name, item_user=message.user)

    def unreact(self, channel: str, ts: str, user: str, name: str) -> JSON:
        """``user`` takes reaction ``name`` back; returns the ``reaction_removed`` event."""
        message = self._reacted(channel, ts)
        users = message.reactions.get(name, [])
        if user in users:
            users.remove(user)
        if not users:
            message.reactions.pop(name, None)
        return self.reaction_event(channel, ts, user, name, item_user=message.user, removed=True)

    def reaction_event(
        self,
        channel: str,
        ts: str,
        user: str,
        name: str,
        *,
        item_user: str | None = None,
        removed: bool = False,
    ) -> JSON:
        """A ``reaction_added`` (or ``_removed``) body, in the shape of Slack's reference."""
        event: JSON = {
            "type": "reaction_removed" if removed else "reaction_added",
            "user": user,
            "reaction": name,
            "item": {"type": "message", "channel": channel, "ts": ts},
            "event_ts": self._next_ts(),
        }
        if item_user is not None:
            event["item_user"] = item_user
        return self.event_callback(event)

    def _reacted(self, channel: str, ts: str) -> Message:
        message = self.message(channel, ts)
        if message is None or message.deleted:
            raise ValueError(f"FakeSlack: no message at {channel}/{ts}")
        return message

    def open_assistant_thread(
        self, channel: str, user: str, *, context_channel: str | None = None
    ) -> tuple[str, JSON]:
        """``user`` opens the app's assistant view: Slack starts a thread in the DM
        ``channel`` with a message of its own and sends ``assistant_thread_started``.
        Returns ``(thread_ts, event_body)``; questions then go in that thread."""
        parent = Message(
            channel=channel,
            ts=self._next_ts(),
            user=BOT_USER_ID,
            text="",
            bot_id=BOT_ID,
            subtype="assistant_app_thread",
        )
        parent.versions.append("")
        self._messages[channel].append(parent)
        context: JSON = {}
        if context_channel is not None:
            context = {"channel_id": context_channel, "team_id": TEAM_ID, "enterprise_id": None}
        event: JSON = {
            "type": "assistant_thread_started",
            "assistant_thread": {
                "user_id": user,
                "context": context,
                "channel_id": channel,
                "thread_ts": parent.ts,
            },
            "event_ts": self._next_ts(),
        }
        return parent.ts, self.event_callback(event)

    def event_callback(self, event: JSON) -> JSON:
        """Wrap an event in the Events API envelope; every call gets a fresh event_id."""
        self._event_counter += 1
        return {
            "token": "fake-verification-token",
            "team_id": TEAM_ID,
            "context_team_id": TEAM_ID,
            "context_enterprise_id": None,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{self._event_counter:010d}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": TEAM_ID,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-fake-{self._event_counter}",
        }

    def _add_thread(self, event: JSON, channel: str, thread_ts: str | None) -> None:
        if thread_ts is None:
            return
        event["thread_ts"] = thread_ts
        parent = self.message(channel, thread_ts)
        if parent is not None and parent.user is not None:
            event["parent_user_id"] = parent.user

    def _claim_ts(self, ts: str | None) -> str:
        if ts is None:
            return self._next_ts()
        # Keep later generated ts values after an explicit one, as Slack's clock would.
        self._last_us = max(self._last_us, _ts_us(ts))
        return ts

    # -- Socket Mode ------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        # autoping answers the SDK's "sdk-ping-pong:<t>" pings with matching pongs, as Slack does.
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connections += 1
        # Shape of Slack's first frame (Socket Mode docs).
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self._sockets),
                "debug_info": {
                    "host": "applink-fake",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": APP_ID},
            }
        )
        try:
            async for frame in ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                self._on_ack(json.loads(frame.data))
        finally:
            if ws in self._sockets:
                self._sockets.remove(ws)
        return ws

    async def wait_for_socket(self, connections: int = 1, *, timeout: float = 5.0) -> None:
        """Wait until ``connections`` WebSockets were ever accepted and one is open."""
        await self.wait_for(
            lambda: self.socket_connections >= connections and self._open_sockets(),
            timeout=timeout,
            what=f"Socket Mode connection #{connections}",
        )

    async def send_event(
        self,
        payload: JSON,
        retry_attempt: int = 0,
        retry_reason: str | None = None,
        *,
        timeout: float = 5.0,
        wait_ack: bool = True,
        redeliver: bool = True,
    ) -> str:
        """Deliver an ``events_api`` envelope over Socket Mode; return its envelope_id.

        Waits up to ``timeout`` for a connection and then (``wait_ack``) for the app's ack of
        this or a later delivery, raising TimeoutError otherwise. Like Slack, first deliveries
        carry ``retry_attempt: 0, retry_reason: ""`` (Bolt turns these into x-slack-retry-*
        headers), and an envelope not acked within ``ack_deadline`` is sent again (a new
        envelope, the same payload) up to 3 times (``redeliver=False``: never); every attempt
        is in ``deliveries[-1].attempts``.
        """
        await self.wait_for(self._open_sockets, timeout=timeout, what="a Socket Mode connection")
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivery = Delivery(payload)
        self.deliveries.append(delivery)
        sent: list[str] = []
        first_sent = asyncio.Event()

        async def send(attempt: Attempt) -> Answer:
            sockets = self._open_sockets()
            if not sockets:
                first_sent.set()
                return Answer(None)  # nobody connected: the attempt is lost
            envelope = Envelope(
                envelope_id=str(uuid.uuid4()),
                payload=payload,
                retry_attempt=attempt.retry_num,
                retry_reason=attempt.reason or (retry_reason or ""),
                sent_at=time.monotonic(),
            )
            own: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._pending[envelope.envelope_id] = (envelope, own)
            self.envelopes.append(envelope)
            sent.append(envelope.envelope_id)
            # Slack spreads envelopes over an app's connections; the newest is as good as any.
            ws = sockets[-1]
            if self.spread_events:
                ws = self._spread.choice(sockets)
            await ws.send_json(
                {
                    "envelope_id": envelope.envelope_id,
                    "payload": payload,
                    "type": "events_api",
                    "accepts_response_payload": False,
                    "retry_attempt": attempt.retry_num,
                    "retry_reason": envelope.retry_reason,
                }
            )
            first_sent.set()
            await own
            if not acked.done():
                acked.set_result(None)
            return Answer(200)

        task = asyncio.create_task(
            slack_delivery.deliver(
                delivery,
                send,
                deadline=self.ack_deadline,
                delays=slack_delivery.RETRY_DELAYS if redeliver else (),
                scale=self.retry_scale,
                first=retry_attempt,
                timeout_reason=slack_delivery.SOCKET_RETRY_REASON,
            )
        )
        self._redeliveries.add(task)
        task.add_done_callback(self._redeliveries.discard)
        await first_sent.wait()
        if not sent:
            raise TimeoutError("FakeSlack: the Socket Mode connection went away")
        if wait_ack:
            try:
                await asyncio.wait_for(asyncio.shield(acked), timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"FakeSlack: no ack for envelope {sent[0]} in {timeout}s"
                ) from None
        return sent[0]

    def _on_ack(self, frame: JSON) -> None:
        # An ack is any frame naming a pending envelope_id (SocketModeResponse.to_dict()).
        pending = self._pending.pop(str(frame.get("envelope_id")), None)
        if pending is None:
            return
        envelope, future = pending
        envelope.acked_at = time.monotonic()
        envelope.ack_payload = frame.get("payload")
        if not future.done():
            future.set_result(None)

    def envelope(self, envelope_id: str) -> Envelope:
        for envelope in self.envelopes:
            if envelope.envelope_id == envelope_id:
                return envelope
        raise KeyError(envelope_id)

    async def request_reconnect(self, reason: str = "refresh_requested") -> None:
        """Send Slack's ``disconnect`` frame; the SDK then opens a new connection."""
        for ws in self._open_sockets():
            await ws.send_json(
                {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}}
            )

    async def close_sockets(self) -> None:
        """Drop every WebSocket from the server side (the SDK reconnects if it can)."""
        for ws in list(self._sockets):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)

    def _open_sockets(self) -> list[web.WebSocketResponse]:
        return [ws for ws in self._sockets if not ws.closed]

    # -- HTTP mode ---------------------------------------------------------------

    async def post_event(
        self,
        app_url: str,
        event_payload: JSON,
        signing_secret: str,
        *,
        timestamp: int | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        bad_signature: bool = False,
    ) -> tuple[int, str]:
        """POST a signed Events API body to the app (e.g. ``http://…/slack/events``).

        Signs ``v0:{timestamp}:{body}`` with HMAC-SHA256 like Slack; ``timestamp`` (unix
        seconds) lets a test send a stale request; retries carry X-Slack-Retry-Num/-Reason
        (reason defaults to ``http_timeout``). Returns ``(status, response_text)``.
        """
        secret = signing_secret + "-wrong" if bad_signature else signing_secret
        status, text, _ = await _post_signed(
            app_url, event_payload, secret, timestamp, retry_num, retry_reason
        )
        return status, text

    async def deliver_event(
        self,
        app_url: str,
        event_payload: JSON,
        signing_secret: str,
        *,
        wait: bool = True,
    ) -> Delivery:
        """Deliver an Events API body over HTTP as Slack does (slack_delivery.py).

        The first POST, then (no 2xx within ``ack_deadline``, or an error answer without
        ``X-Slack-No-Retry: 1``) up to 3 retries carrying X-Slack-Retry-Num / -Reason, each
        freshly signed. ``wait``: return once acknowledged or the retries ran out; else at
        once (``Delivery.finished()`` waits). Every attempt is in ``Delivery.attempts``.
        """
        delivery = Delivery(event_payload)
        self.deliveries.append(delivery)

        async def send(attempt: Attempt) -> Answer:
            try:
                status, _, headers = await _post_signed(
                    app_url,
                    event_payload,
                    signing_secret,
                    retry_num=attempt.retry_num or None,
                    retry_reason=attempt.reason or None,
                )
            except aiohttp.ClientError:
                return Answer(None)
            return Answer(status, no_retry=headers.get("X-Slack-No-Retry") == "1")

        task = asyncio.create_task(
            slack_delivery.deliver(
                delivery, send, deadline=self.ack_deadline, scale=self.retry_scale
            )
        )
        self._redeliveries.add(task)
        task.add_done_callback(self._redeliveries.discard)
        if wait:
            await delivery.done.wait()
        return delivery


# -- module helpers ----------------------------------------------------------------


async def _post_signed(
    app_url: str,
    event_payload: JSON,
    signing_secret: str,
    timestamp: int | None = None,
    retry_num: int | None = None,
    retry_reason: str | None = None,
) -> tuple[int, str, dict[str, str]]:
    """POST ``event_payload`` signed as Slack signs it; (status, text, headers) of the answer."""
    body = json.dumps(event_payload)
    headers = slack_signing.signed_headers(body, signing_secret, timestamp=timestamp)
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
    async with (
        aiohttp.ClientSession() as session,
        session.post(app_url, data=body, headers=headers) as response,
    ):
        text = (await response.read()).decode(errors="replace")
        return response.status, text, dict(response.headers)


def _add_person(event: JSON, files: list[JSON], user_team: str | None) -> None:
    """What a person's event carries beyond text: files (Slack's file objects), and (Slack
    Connect) the author's home team, which Slack also gives as ``team`` and ``source_team``."""
    if files:
        event["files"] = files
    if user_team is not None:
        event["team"] = event["user_team"] = event["source_team"] = user_team


def _predicate(when: Callable[[JSON], object] | None) -> Callable[[JSON], bool] | None:
    if when is None:
        return None
    return lambda params: bool(when(params))


def _on_params(when: Callable[[JSON], object] | None) -> Callable[[Call], object] | None:
    """A test's predicate on a call's params, as a gate's predicate on the call."""
    if when is None:
        return None
    return lambda call: when(call.params)


async def _read_params(request: web.Request) -> JSON:
    params: JSON = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
        else:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
    for key in _JSON_PARAMS:
        value = params.get(key)
        if isinstance(value, str) and value[:1] in ("[", "{"):
            params[key] = json.loads(value)
    return params


def _keep_metadata(message: Message, params: JSON) -> None:
    # Slack's shape: {"event_type": str, "event_payload": object}; a call without it keeps
    # what the message had.
    meta = params.get("metadata")
    if isinstance(meta, dict) and meta.get("event_type"):
        message.metadata = {
            "event_type": str(meta["event_type"]),
            "event_payload": dict(meta.get("event_payload") or {}),
        }


def _flag(params: JSON, key: str) -> bool:
    # slack_sdk sends booleans as "1"/"0" in query strings, true/false in JSON.
    return params.get(key) in (True, 1, "1", "true")


def _require(params: JSON, key: str, error: str) -> str:
    value = params.get(key)
    if not value:
        raise SlackError(error)
    return str(value)


def _opt_str(params: JSON, key: str) -> str | None:
    value = params.get(key)
    return str(value) if value else None


def _visible(params: JSON) -> str:
    """What Slack renders: markdown_text, else the blocks, else the text (a fallback then)."""
    markdown = params.get("markdown_text")
    if isinstance(markdown, str) and markdown:
        return markdown
    blocks = params.get("blocks")
    if isinstance(blocks, list) and blocks:
        return "\n".join(t for t in (_block_text(b) for b in blocks) if t)
    return str(params.get("text") or "")


def _block_text(node: Any) -> str:
    """Visible text of a block: section/header/markdown/context/rich_text."""
    if isinstance(node, list):
        return "".join(_block_text(n) for n in node)
    if not isinstance(node, dict):
        return ""
    kind = node.get("type")
    if kind in ("plain_text", "mrkdwn", "text", "markdown"):
        return str(node.get("text", ""))
    if kind == "link":
        return str(node.get("text") or node.get("url", ""))
    if kind == "user":
        return f"<@{node.get('user_id', '')}>"
    if kind == "emoji":
        return f":{node.get('name', '')}:"
    if kind == "section":
        texts = [_block_text(node.get("text"))] + [_block_text(f) for f in node.get("fields", [])]
        return "\n".join(t for t in texts if t)
    if kind == "header":
        return _block_text(node.get("text"))
    if kind == "context":
        return " ".join(_block_text(e) for e in node.get("elements", []))
    if kind in ("rich_text_list", "rich_text_quote", "rich_text_preformatted"):
        return "\n".join(_block_text(e) for e in node.get("elements", []))
    return _block_text(node.get("elements", []))


def _check_blocks(blocks: list[Any], max_markdown: int) -> None:
    # Block Kit limits from Slack's reference: 50 blocks a message, section text 3,000,
    # header 150, markdown block 12,000 (cumulative per payload).
    if len(blocks) > 50:
        raise SlackError("invalid_blocks")
    markdown_total = 0
    for block in blocks:
        if not isinstance(block, dict) or "type" not in block:
            raise SlackError("invalid_blocks")
        kind = block["type"]
        text = block.get("text")
        if kind == "section" and isinstance(text, dict) and len(text.get("text", "")) > 3000:
            raise SlackError("invalid_blocks")
        if kind == "header" and isinstance(text, dict) and len(text.get("text", "")) > 150:
            raise SlackError("invalid_blocks")
        if kind == "markdown":
            markdown_total += len(str(text or ""))
    if markdown_total > max_markdown:
        raise SlackError("invalid_blocks")


def _channel_type(channel: str) -> str:
    return {"D": "im", "G": "group"}.get(channel[:1], "channel")


def _ts_us(ts: str) -> int:
    seconds, _, micros = ts.partition(".")
    return int(seconds) * 1_000_000 + int(micros.ljust(6, "0")[:6])


def _format_ts(us: int) -> str:
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "TEAM_ID",
    "TIER_LIMITS",
    "WORKSPACE_URL",
    "Call",
    "Envelope",
    "Ephemeral",
    "FakeSlack",
    "Message",
    "Status",
    "StoredFile",
    "Suggested",
]
