"""One answer in a Slack thread, as a small state machine.

::

    fresh ──stream starts──▶ streaming ──stream over──▶ editing ──finish / fail──▶ done
      └────────── streaming refused: post ────────────────▲
                             streaming ──stop pressed──▶ stopped ──finish──▶ editing

* **streaming**: a native stream to the asker (``chat.startStream`` /
  ``appendStream`` / ``stopStream``); an update appends what is new.
* **editing**: ordinary messages; the answer is split at paragraph/code-fence
  boundaries, each part posted once and edited (``chat.update``) as it grows;
  standard Markdown (``markdown_text``), or mrkdwn where the channel refuses it.

A stream becomes an ordinary message, edited from then on, when Slack ended it
(``message_not_in_streaming_state``), when it nears Slack's ~5 minute limit,
when the answer outgrows one message, or when the text stops being an
extension of what was streamed: ``chat.update`` replaces the whole text, so no
character is lost or repeated. A reply built after a restart starts in
*editing* with the messages an earlier process used; what they show is unknown,
so each is rewritten (the first may still be an open stream: it is stopped).
A regenerated answer starts the same way in the messages of the answer it
replaces: it is edited in place, surplus parts deleted, missing ones posted.
After Slack's stop button, the final text (what the message showed, marked
stopped) replaces the message with ``chat.update``.

Intermediate updates take budget only when it is there right now and skip
otherwise; start, final and failure calls wait for it and keep retrying 429s
for ``patience`` seconds. Every text goes out with its mentions neutralised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.slack.budget import SlackBudget
from adapters.slack.features import (
    MARKDOWN_NOT_HERE,
    STREAMING_NOT_FOR_THIS_REPLY,
    STREAMING_NOT_HERE,
    Recipient,
    Refusals,
)
from adapters.slack.text import markdown_to_mrkdwn, neutralise_mentions
from bridge.errors import PlatformFailed, PlatformRateLimited, ReplyStopped
from bridge.reply import SaveMessageIds
from bridge.split import split_message

log = logging.getLogger(__name__)

THINKING = "is thinking…"
EMPTY_ANSWER = "_(empty answer)_"
# markdown_text (and the markdown block) take up to 12,000 characters.
MESSAGE_LIMIT = 12_000
# Slack ends a native stream by itself about 5 minutes after it started; leave it first.
MAX_STREAM_AGE = 270.0
# How long a call that must land keeps trying through 429s (beyond the retry handler).
FINAL_PATIENCE = 180.0
# A message the reply occupied is gone (deleted by a person, or not ours): post it anew.
MESSAGE_GONE = frozenset({"message_not_found", "cant_update_message"})
NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)
# Slack said no, or the call's fate is unknown.
CALL_ERRORS = (SlackApiError, aiohttp.ClientError, TimeoutError, OSError)


@dataclass(frozen=True)
class SlackOutput:
    """What every reply of the process shares."""

    client: AsyncWebClient  # retries 429s, server and connection errors: calls that must land
    quick: AsyncWebClient  # no retries: an intermediate update is skipped rather than waited on
    budget: SlackBudget = field(default_factory=SlackBudget)
    refusals: Refusals = field(default_factory=Refusals)
    streaming: bool = True  # SLACK_NATIVE_STREAMING
    limit: int = MESSAGE_LIMIT
    max_stream_age: float = MAX_STREAM_AGE
    patience: float = FINAL_PATIENCE


@dataclass(frozen=True)
class Target:
    """Where one reply goes, and to whom its stream is addressed."""

    workspace: str
    channel: str
    thread_ts: str
    recipient_user_id: str
    recipient_team_id: str
    recipient: Recipient = Recipient.TEAM


# -- states ---------------------------------------------------------------------------


@dataclass
class _Part:
    ts: str
    shown: str | None  # None: unknown (written before a restart)


@dataclass
class _Fresh:
    pass


@dataclass
class _Streaming:
    ts: str
    shown: str  # the text the stream holds
    started: float
    uncertain: bool = False  # a call's outcome is unknown: only chat.update can be trusted


@dataclass
class _Editing:
    parts: list[_Part] = field(default_factory=list)
    open_stream: bool = False  # the first part may be a stream a dead process left open


@dataclass
class _Stopped:
    parts: list[_Part]


@dataclass
class _Done:
    pass


_State = _Fresh | _Streaming | _Editing | _Stopped | _Done


class _Skipped(Exception):
    """No budget for an intermediate update right now."""


class SlackReply:
    """``bridge.reply.ReplyHandle`` for one answer in one Slack thread."""

    def __init__(
        self,
        output: SlackOutput,
        target: Target,
        message_ids: Sequence[str] = (),
        save_ids: SaveMessageIds | None = None,
        *,
        may_be_streaming: bool = True,
    ) -> None:
        """``message_ids``: messages to rewrite (an earlier attempt's after a restart,
        or the answer a regenerated one replaces: ``may_be_streaming`` False, as a
        finished answer holds no open stream)."""
        self._out = output
        self._to = target
        self._save_ids = save_ids
        self._lock = asyncio.Lock()  # one Slack exchange at a time per reply
        self._status_set = False
        # A regenerate's reply: until its first words the messages hold the answer it
        # replaces, which a failure must leave as it is.
        self._replacing = bool(message_ids) and not may_be_streaming
        self._state: _State = (
            _Editing([_Part(ts, None) for ts in message_ids], open_stream=may_be_streaming)
            if message_ids
            else _Fresh()
        )

    @property
    def done(self) -> bool:
        """The reply has had its last word (finished or failed)."""
        return isinstance(self._state, _Done)

    @property
    def message_ids(self) -> list[str]:
        """The messages the reply occupies now, in order."""
        state = self._state
        if isinstance(state, _Streaming):
            return [state.ts]
        if isinstance(state, _Editing | _Stopped):
            return [part.ts for part in state.parts]
        return []

    # -- ReplyHandle ----------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._set_status(THINKING)
            self._status_set = True
        except (_Skipped, *CALL_ERRORS) as exc:
            # Only assistant threads show a status; elsewhere Slack says no. Harmless.
            log.debug("no thinking status in %s: %s", self._to.channel, _describe(exc))

    async def update(self, text: str) -> bool:
        async with self._lock:
            if isinstance(self._state, _Stopped):
                raise ReplyStopped(f"stopped by a person in {self._to.channel}")
            if isinstance(self._state, _Done):
                return False
            try:
                await self._show(text, urgent=False, final=False)
            except _Skipped:
                return False
            except CALL_ERRORS as exc:
                # A lost intermediate update is harmless: a later one or the final carries it.
                log.warning("slack update failed in %s: %s", self._to.channel, _describe(exc))
                return False
            return True

    async def finish(self, text: str) -> None:
        async with self._lock:
            if isinstance(self._state, _Done):
                return
            if isinstance(self._state, _Stopped):
                # Slack's stop button ended the stream: its message is an ordinary one
                # now, rewritten with the final text (what it showed, marked stopped).
                self._state = _Editing(self._state.parts)
            try:
                await self._show(text, urgent=True, final=True)
            except ReplyStopped:
                await self._clear_status()
                raise
            except CALL_ERRORS as exc:
                raise PlatformFailed(
                    f"slack refused the answer in {self._to.channel}: {_describe(exc)}"
                ) from exc
            self._state = _Done()
            await self._clear_status()

    async def fail(self, message: str) -> None:
        async with self._lock:
            warning = f":warning: {message}"
            state = self._state
            parts: list[_Part] = []
            open_stream = False
            if isinstance(state, _Streaming):
                parts = [_Part(state.ts, None if state.uncertain else state.shown)]
                open_stream = True
            elif isinstance(state, _Editing):
                parts, open_stream = state.parts, state.open_stream
            elif isinstance(state, _Stopped):
                parts = state.parts
            if self._replacing and all(part.shown is None for part in parts):
                parts = []  # the replaced answer stays whole; the notice goes below it
            self._state = _Done()
            try:
                if parts and open_stream:
                    await self._stop_quietly(parts[0].ts)
                await self._show_warning(parts, warning)
            except CALL_ERRORS as exc:
                raise PlatformFailed(
                    f"slack refused the failure notice in {self._to.channel}: {_describe(exc)}"
                ) from exc
            finally:
                await self._clear_status()

    # -- showing text -----------------------------------------------------------------

    async def _show(self, text: str, *, urgent: bool, final: bool) -> None:
        body = neutralise_mentions(text) if text.strip() else EMPTY_ANSWER
        if isinstance(self._state, _Fresh) and await self._start_stream(body, urgent, final):
            return
        state = self._state
        if isinstance(state, _Streaming):
            if self._extends(state, body) and await self._append(state, body, urgent, final):
                return
            if self._state is state:
                await self._leave_stream(state, urgent)
        state = self._state
        if isinstance(state, _Editing):
            await self._edit(state, body, urgent)

    async def _start_stream(self, body: str, urgent: bool, final: bool) -> bool:
        """Open the native stream with ``body``; False (now editing) where it cannot."""
        to = self._to
        if final or not self._may_stream(body):
            # A whole answer before any stream opened (a short one, or every update
            # skipped for budget) is one ordinary post: a stream would cost two Tier 2 calls.
            self._state = _Editing()
            return False
        try:
            response = await self._call(
                "chat.startStream",
                urgent,
                channel=to.channel,
                thread_ts=to.thread_ts,
                markdown_text=body,
                recipient_user_id=to.recipient_user_id or None,
                recipient_team_id=to.recipient_team_id or None,
            )
        except SlackApiError as exc:
            code = _error(exc)
            if code in STREAMING_NOT_HERE:
                log.info("no native streaming in %s (%s); posting and editing", to.channel, code)
                self._out.refusals.refuse_streaming(to.workspace, to.channel, to.recipient)
            elif code in STREAMING_NOT_FOR_THIS_REPLY:
                log.info("no native streaming for this reply (%s); posting", code)
            elif not urgent:
                raise  # a hiccup: a later update tries again
            else:
                log.warning("cannot start a stream in %s (%s); posting", to.channel, code)
            self._state = _Editing()
            return False
        stream = _Streaming(str(response["ts"]), body, time.monotonic())
        self._state = stream
        await self._save([stream.ts])
        return True

    def _may_stream(self, body: str) -> bool:
        to = self._to
        if not self._out.streaming or len(body) > self._out.limit:
            return False
        if not to.recipient_user_id and not to.channel.startswith("D"):
            return False  # outside DMs Slack needs the recipient
        return not self._out.refusals.streaming_refused(to.workspace, to.channel, to.recipient)

    def _extends(self, state: _Streaming, body: str) -> bool:
        return (
            not state.uncertain
            and body.startswith(state.shown)
            and len(body) <= self._out.limit
            and time.monotonic() - state.started < self._out.max_stream_age
        )

    async def _append(self, state: _Streaming, body: str, urgent: bool, final: bool) -> bool:
        """Add what is new to the stream (and close it when ``final``); False when Slack
        had already ended the stream (the reply is editing it now)."""
        delta = body[len(state.shown) :]
        if not delta and not final:
            return True
        method = "chat.stopStream" if final else "chat.appendStream"
        try:
            await self._call(
                method, urgent, channel=self._to.channel, ts=state.ts, markdown_text=delta or None
            )
        except SlackApiError as exc:
            code = _error(exc)
            if code == "stopped_by_user":
                self._state = _Stopped([_Part(state.ts, state.shown)])
                raise ReplyStopped(f"stopped by a person in {self._to.channel}") from exc
            if code == "message_not_in_streaming_state":
                log.info("Slack ended the stream in %s; editing it instead", self._to.channel)
                self._state = _Editing([_Part(state.ts, state.shown)])
                return False
            raise
        except NETWORK_ERRORS:
            state.uncertain = True  # the delta may or may not be there now
            raise
        state.shown = body
        if final:
            self._state = _Editing([_Part(state.ts, body)])
        return True

    async def _leave_stream(self, state: _Streaming, urgent: bool) -> None:
        """Close the stream so its message can be edited like any other."""
        try:
            await self._call("chat.stopStream", urgent, channel=self._to.channel, ts=state.ts)
        except SlackApiError as exc:
            code = _error(exc)
            if code == "stopped_by_user":
                self._state = _Stopped([_Part(state.ts, state.shown)])
                raise ReplyStopped(f"stopped by a person in {self._to.channel}") from exc
            if code != "message_not_in_streaming_state":
                raise
        self._state = _Editing([_Part(state.ts, None if state.uncertain else state.shown)])

    async def _edit(self, state: _Editing, body: str, urgent: bool) -> None:
        chunks = split_message(body, self._out.limit)
        for index, chunk in enumerate(chunks):
            if index < len(state.parts):
                part = state.parts[index]
                if part.shown == chunk:
                    continue
                if index == 0 and state.open_stream:
                    await self._stop_quietly(part.ts, urgent)
                    state.open_stream = False
                await self._rewrite(state, part, chunk, urgent)
            else:
                ts = await self._send(chunk, None, urgent)
                state.parts.append(_Part(ts, chunk))
                await self._save([p.ts for p in state.parts])
        while len(state.parts) > len(chunks):
            # Surplus parts of an earlier, longer attempt (after a restart).
            await self._delete(state.parts[-1].ts, urgent)
            state.parts.pop()
            await self._save([p.ts for p in state.parts])

    async def _rewrite(self, state: _Editing, part: _Part, chunk: str, urgent: bool) -> None:
        try:
            await self._send(chunk, part.ts, urgent)
        except SlackApiError as exc:
            if _error(exc) not in MESSAGE_GONE:
                raise
            log.info("message %s is gone (%s); posting the part again", part.ts, _error(exc))
            part.ts = await self._send(chunk, None, urgent)
            await self._save([p.ts for p in state.parts])
        part.shown = chunk

    async def _show_warning(self, parts: list[_Part], warning: str) -> None:
        """The one failure notice: in the reply's message where it has one."""
        into: _Part | None = None
        text = warning
        if parts and any(part.shown is None for part in parts):
            # What these messages show is unknown (a restart): the first says it, the rest go.
            into = parts[0]
            for part in parts[1:]:
                await self._delete(part.ts, True)
            del parts[1:]
            await self._save([into.ts])
        elif parts:
            shown = parts[-1].shown or ""
            combined = f"{shown}\n\n{warning}" if shown.strip() else warning
            if len(combined) <= self._out.limit:
                into, text = parts[-1], combined
        if into is not None:
            try:
                await self._send(text, into.ts, True)
                return
            except CALL_ERRORS as exc:
                log.warning("cannot edit %s for the failure notice: %s", into.ts, _describe(exc))
        ts = await self._send(warning, None, True)
        await self._save([*(p.ts for p in parts), ts])

    # -- Slack calls --------------------------------------------------------------------

    async def _send(self, chunk: str, ts: str | None, urgent: bool) -> str:
        """Post (or, with ``ts``, edit) one message: standard Markdown where the
        channel takes ``markdown_text``, converted to mrkdwn where it does not."""
        to = self._to
        if not self._out.refusals.markdown_refused(to.workspace, to.channel):
            try:
                return await self._write(ts, urgent, markdown_text=chunk)
            except SlackApiError as exc:
                if _error(exc) not in MARKDOWN_NOT_HERE:
                    raise
                log.info("markdown_text refused in %s (%s); mrkdwn", to.channel, _error(exc))
                self._out.refusals.refuse_markdown(to.workspace, to.channel)
        return await self._write(ts, urgent, text=markdown_to_mrkdwn(chunk))

    async def _write(self, ts: str | None, urgent: bool, **content: str) -> str:
        if ts is None:
            response = await self._call(
                "chat.postMessage",
                urgent,
                channel=self._to.channel,
                thread_ts=self._to.thread_ts,
                **content,
            )
            return str(response["ts"])
        await self._call("chat.update", urgent, channel=self._to.channel, ts=ts, **content)
        return ts

    async def _delete(self, ts: str, urgent: bool) -> None:
        try:
            await self._call("chat.delete", urgent, channel=self._to.channel, ts=ts)
        except SlackApiError as exc:
            if _error(exc) not in MESSAGE_GONE:
                raise

    async def _stop_quietly(self, ts: str, urgent: bool = True) -> None:
        """Stop a stream that may be open; whatever Slack says, editing comes next."""
        try:
            await self._call("chat.stopStream", urgent, channel=self._to.channel, ts=ts)
        except (PlatformRateLimited, *CALL_ERRORS) as exc:
            log.debug("stopping stream %s: %s", ts, _describe(exc))

    async def _clear_status(self) -> None:
        if not self._status_set:
            return
        self._status_set = False
        try:
            await self._set_status("")
        except (_Skipped, *CALL_ERRORS):
            pass  # Slack clears it by itself once the bot has answered

    async def _set_status(self, status: str) -> None:
        await self._call(
            "assistant.threads.setStatus",
            False,
            channel_id=self._to.channel,
            thread_ts=self._to.thread_ts,
            status=status,
        )

    async def _call(self, method: str, urgent: bool, **params: Any) -> AsyncSlackResponse:
        """One Web API call within the budget. Not ``urgent``: now or ``_Skipped``.
        ``urgent``: waits for the budget, and through 429s for ``patience`` seconds."""
        to, budget = self._to, self._out.budget
        body = {key: value for key, value in params.items() if value is not None}
        if not urgent:
            if not await budget.try_take(method, to.workspace, to.channel):
                raise _Skipped(method)
            try:
                return await self._out.quick.api_call(method, json=body)
            except SlackApiError as exc:
                if exc.response.status_code != 429:
                    raise
                budget.pause(method, to.workspace, to.channel, _retry_after(exc))
                raise _Skipped(method) from exc
        deadline = time.monotonic() + self._out.patience
        while True:
            await budget.take(method, to.workspace, to.channel)
            try:
                return await self._out.client.api_call(method, json=body)
            except SlackApiError as exc:
                if exc.response.status_code != 429:
                    raise
                # The retry handler already waited out several Retry-After periods.
                wait = _retry_after(exc)
                if time.monotonic() + wait > deadline:
                    raise PlatformRateLimited(
                        f"slack kept rate limiting {method} in {to.channel}"
                    ) from exc
                budget.pause(method, to.workspace, to.channel, wait)

    async def _save(self, ids: list[str]) -> None:
        if self._save_ids is not None:
            await self._save_ids(ids)


def _error(exc: SlackApiError) -> str:
    try:
        return str(exc.response.get("error") or exc.response.status_code)
    except Exception:
        return "unknown"


def _describe(exc: BaseException) -> str:
    return _error(exc) if isinstance(exc, SlackApiError) else type(exc).__name__


def _retry_after(exc: SlackApiError) -> float:
    try:
        return max(float(exc.response.headers.get("Retry-After", 1)), 0.0)
    except (TypeError, ValueError):
        return 1.0
