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

Every post and edit carries metadata naming the turn and the part
(``adapters.slack.posts``). A post (or stream start) whose answer was lost leaves
its part uncertain: before posting it again the reply looks for the message in the
thread and adopts it, so a lost answer never makes a second copy.

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

from slack_sdk.errors import SlackApiError

from adapters.slack.calls import (
    CALL_ERRORS,
    MESSAGE_GONE,
    NETWORK_ERRORS,
    Skipped,
    SlackCalls,
    SlackOutput,
    Target,
    describe,
    error,
    fitting,
)
from adapters.slack.features import STREAMING_NOT_FOR_THIS_REPLY, STREAMING_NOT_HERE
from adapters.slack.files import upload
from adapters.slack.posts import MARKERS, UNCERTAIN, UNCERTAIN_STREAM, lost
from adapters.slack.text import neutralise_mentions
from bridge.errors import PlatformFailed, ReplyStopped
from bridge.parts import Part, notice_place
from bridge.reply import OutFile, SaveMessageIds

__all__ = ["CALL_ERRORS", "SlackOutput", "SlackReply", "Target"]

log = logging.getLogger(__name__)

THINKING = "is thinking…"
EMPTY_ANSWER = "_(empty answer)_"
LOST_PAUSE = 1.0  # seconds before looking again for a message whose post lost its answer


# -- states ---------------------------------------------------------------------------


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
    parts: list[Part] = field(default_factory=list)
    open_stream: bool = False  # the first part may be a stream a dead process left open


@dataclass
class _Stopped:
    parts: list[Part]


@dataclass
class _Done:
    pass


_State = _Fresh | _Streaming | _Editing | _Stopped | _Done


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
        self._calls = SlackCalls(output, target)
        self._save_ids = save_ids
        self._lock = asyncio.Lock()  # one Slack exchange at a time per reply
        self._status: asyncio.Task[bool] | None = None
        # A regenerate's reply: until its first words the messages hold the answer it
        # replaces, which a failure must leave as it is.
        self._replacing = bool(message_ids) and not may_be_streaming
        self._state: _State = (
            _Editing([Part(ts, None) for ts in message_ids], open_stream=may_be_streaming)
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
            return [part.id for part in state.parts if part.id]
        return []

    # -- ReplyHandle ----------------------------------------------------------------

    async def start(self) -> None:
        # Only assistant threads show a status. In the background: the question goes to
        # Open WebUI at once, however slow Slack is.
        if self._to.assistant:
            self._status = asyncio.create_task(self._show_status(THINKING))

    async def update(self, text: str) -> bool:
        async with self._lock:
            if isinstance(self._state, _Stopped):
                raise ReplyStopped(f"stopped by a person in {self._to.channel}")
            if isinstance(self._state, _Done):
                return False
            try:
                await self._show(text, urgent=False, final=False)
            except Skipped:
                return False
            except CALL_ERRORS as exc:
                # A lost intermediate update is harmless: a later one or the final carries it.
                log.warning("slack update failed in %s: %s", self._to.channel, describe(exc))
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
                    f"slack refused the answer in {self._to.channel}: {describe(exc)}"
                ) from exc
            self._state = _Done()
            await self._clear_status()

    async def attach(self, files: Sequence[OutFile]) -> None:
        """The answer's files (generated images, long code) as files in its thread."""
        await upload(self._out.client, self._to.channel, self._to.thread_ts, files)

    async def fail(self, message: str) -> None:
        async with self._lock:
            warning = f":warning: {message}"
            state = self._state
            parts: list[Part] = []
            open_stream = False
            if isinstance(state, _Streaming):
                parts = [Part(state.ts, None if state.uncertain else state.shown)]
                open_stream = True
            elif isinstance(state, _Editing):
                parts, open_stream = state.parts, state.open_stream
            elif isinstance(state, _Stopped):
                parts = state.parts
            self._state = _Done()
            try:
                parts = await self._settled(parts)
                if parts and open_stream:
                    await self._calls.stop_quietly(parts[0].id)
                await self._show_warning(parts, warning)
            except CALL_ERRORS as exc:
                raise PlatformFailed(
                    f"slack refused the failure notice in {self._to.channel}: {describe(exc)}"
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
            response = await self._calls.call(
                "chat.startStream",
                urgent,
                channel=to.channel,
                thread_ts=to.thread_ts,
                markdown_text=body,
                recipient_user_id=to.recipient_user_id or None,
                recipient_team_id=to.recipient_team_id or None,
            )
        except CALL_ERRORS as exc:
            if lost(exc):
                # Slack may have opened the stream: find it before posting anything.
                log.warning("chat.startStream lost its answer in %s: %s", to.channel, describe(exc))
                self._state = _Editing([Part(UNCERTAIN_STREAM, None)], open_stream=True)
                await self._save([UNCERTAIN_STREAM])
                if not urgent:
                    raise
                return False
            if not isinstance(exc, SlackApiError):
                raise
            code = error(exc)
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
            await self._calls.call(
                method,
                urgent,
                channel=self._to.channel,
                ts=state.ts,
                markdown_text=delta or None,
                metadata=self._calls.metadata(0) if final else None,
            )
        except SlackApiError as exc:
            code = error(exc)
            if code == "stopped_by_user":
                self._state = _Stopped([Part(state.ts, state.shown)])
                raise ReplyStopped(f"stopped by a person in {self._to.channel}") from exc
            if code == "message_not_in_streaming_state":
                log.info("Slack ended the stream in %s; editing it instead", self._to.channel)
                self._state = _Editing([Part(state.ts, state.shown)])
                return False
            raise
        except NETWORK_ERRORS:
            state.uncertain = True  # the delta may or may not be there now
            raise
        state.shown = body
        if final:
            self._state = _Editing([Part(state.ts, body)])
        return True

    async def _leave_stream(self, state: _Streaming, urgent: bool) -> None:
        """Close the stream so its message can be edited like any other."""
        try:
            await self._calls.call(
                "chat.stopStream",
                urgent,
                channel=self._to.channel,
                ts=state.ts,
                metadata=self._calls.metadata(0),
            )
        except SlackApiError as exc:
            code = error(exc)
            if code == "stopped_by_user":
                self._state = _Stopped([Part(state.ts, state.shown)])
                raise ReplyStopped(f"stopped by a person in {self._to.channel}") from exc
            if code != "message_not_in_streaming_state":
                raise
        self._state = _Editing([Part(state.ts, None if state.uncertain else state.shown)])

    async def _edit(self, state: _Editing, body: str, urgent: bool) -> None:
        chunks = fitting(body, self._out.limit)
        for index, chunk in enumerate(chunks):
            if index == len(state.parts):
                state.parts.append(Part("", None))
            await self._place(state, index, chunk, urgent)
        while len(state.parts) > len(chunks):
            # Surplus parts of an earlier, longer attempt (after a restart).
            await self._resolve(state.parts)
            if state.parts[-1].id:
                await self._calls.delete(state.parts[-1].id, urgent)
            state.parts.pop()
            await self._save_parts(state.parts)

    async def _place(self, state: _Editing, index: int, chunk: str, urgent: bool) -> None:
        """Part ``index`` shows ``chunk``: its message edited, or posted where it has none.
        A part whose post lost its answer is looked for first (and adopted if Slack made
        it); ``urgent``, a lost answer is looked for and the part placed again."""
        deadline = time.monotonic() + self._out.patience
        while True:
            part = state.parts[index]
            if part.id in MARKERS:
                await self._resolve(state.parts)
            if part.shown == chunk:
                return
            if part.id:
                if index == 0 and state.open_stream:
                    await self._calls.stop_quietly(part.id, urgent)
                    state.open_stream = False
                await self._rewrite(state.parts, index, chunk, urgent)
                return
            try:
                await self._post(state.parts, index, chunk, urgent)
                return
            except CALL_ERRORS as exc:
                if not (urgent and lost(exc) and time.monotonic() < deadline):
                    raise
            await asyncio.sleep(LOST_PAUSE)

    async def _post(self, parts: list[Part], index: int, chunk: str, urgent: bool) -> None:
        """Post part ``index``; when Slack's answer is lost, the part is uncertain."""
        part = parts[index]
        try:
            ts = await self._calls.send(chunk, None, urgent, index)
        except CALL_ERRORS as exc:
            if lost(exc):
                log.warning(
                    "posting part %d in %s lost its answer (%s); it is looked for before"
                    " posting again",
                    index,
                    self._to.channel,
                    describe(exc),
                )
                part.id, part.shown = UNCERTAIN, None
                await self._save_parts(parts)
            raise
        part.id, part.shown = ts, chunk
        await self._save_parts(parts)

    async def _rewrite(self, parts: list[Part], index: int, chunk: str, urgent: bool) -> None:
        part = parts[index]
        try:
            await self._calls.send(chunk, part.id, urgent, index)
        except SlackApiError as exc:
            if error(exc) not in MESSAGE_GONE:
                raise
            log.info("message %s is gone (%s); posting the part again", part.id, error(exc))
            part.id, part.shown = "", None
            await self._post(parts, index, chunk, urgent)
            return
        part.shown = chunk

    async def _resolve(self, parts: list[Part]) -> None:
        """Settle the parts whose post lost its answer: the message Slack made is
        adopted (what it shows unknown), a part Slack did not make is posted again."""
        unsure = [index for index, part in enumerate(parts) if part.id in MARKERS]
        if not unsure:
            return
        found = await self._calls.find()
        taken = {part.id for part in parts}
        for index in unsure:
            part = parts[index]
            ts = found.parts.get(index)
            if ts is None and part.id == UNCERTAIN_STREAM:
                ts = next((t for t in found.unmarked if t not in taken), None)
            log.info(
                "part %d in %s: %s",
                index,
                self._to.channel,
                f"Slack made it ({ts}); adopted" if ts else "Slack did not make it",
            )
            part.id, part.shown = ts or "", None
        await self._save_parts(parts)

    async def _settled(self, parts: list[Part]) -> list[Part]:
        """The parts that hold a message, uncertain ones looked for (a failed look-up
        leaves them out: the failure notice must go out regardless)."""
        try:
            await self._resolve(parts)
        except CALL_ERRORS as exc:
            log.warning("cannot look for uncertain parts in %s: %s", self._to.channel, exc)
        return [part for part in parts if part.id and part.id not in MARKERS]

    async def _show_warning(self, parts: list[Part], warning: str) -> None:
        """The one failure notice, where ``bridge.parts`` puts it."""
        place = notice_place(parts, warning, self._out.limit, replacing=self._replacing)
        for part in place.drop:
            await self._calls.delete(part.id, True)
        parts = [*place.keep, *([place.edit] if place.edit else [])]
        if place.drop:
            await self._save_parts(parts)
        if place.edit is not None:
            try:
                await self._calls.send(place.text, place.edit.id, True, len(parts) - 1)
                return
            except CALL_ERRORS as exc:
                log.warning(
                    "cannot edit %s for the failure notice: %s", place.edit.id, describe(exc)
                )
        parts.append(Part("", None))
        await self._place(_Editing(parts), len(parts) - 1, warning, True)

    # -- status ---------------------------------------------------------------------

    async def _show_status(self, status: str) -> bool:
        try:
            await self._calls.set_status(status)
        except (Skipped, *CALL_ERRORS) as exc:
            log.debug("no status in %s: %s", self._to.channel, describe(exc))
            return False
        return True

    async def _clear_status(self) -> None:
        task, self._status = self._status, None
        if task is None:
            return
        if not task.done():
            task.cancel()  # Slack clears a status by itself once the bot has answered
            return
        if not task.cancelled() and task.result():
            await self._show_status("")

    async def _save(self, ids: list[str]) -> None:
        if self._save_ids is not None:
            await self._save_ids(ids)

    async def _save_parts(self, parts: list[Part]) -> None:
        await self._save([part.id for part in parts if part.id])
