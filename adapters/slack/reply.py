"""One answer in a Slack thread: native streaming, or post + paced updates.

Native streaming (``chat.startStream`` / ``appendStream`` / ``stopStream``) is
tried first; messages carry standard Markdown (``markdown_text``), or mrkdwn
where a workspace does not take it. Where Slack refuses it, or once the answer outgrows one message
or stops being a pure extension of what was streamed, the reply continues as
ordinary messages: the answer is split at paragraph/code-fence boundaries and
each part is posted once and edited as it grows. A 429 is waited out by the
client's retry handler, so no text is lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.text import markdown_to_mrkdwn
from bridge.errors import PlatformRateLimited
from bridge.split import split_message

log = logging.getLogger(__name__)

THINKING = "is thinking…"
# Errors that mean "this workspace/app/channel cannot stream", as opposed to a hiccup.
# A workspace that ignores ``markdown_text`` answers as if there were no text.
MARKDOWN_REFUSED = {"no_text", "invalid_arguments"}
STREAMING_REFUSED = {
    "not_allowed",
    "not_allowed_token_type",
    "method_not_supported_for_channel_type",
    "missing_scope",
    "unknown_method",
    "feature_not_enabled",
    "invalid_arguments",
    "missing_recipient_user_id",
    "missing_recipient_team_id",
}


@dataclass
class SlackFeatures:
    """What this workspace accepts, shared by all replies: once Slack refuses native
    streaming or ``markdown_text``, stop trying and use the older way."""

    streaming: bool = True
    markdown_text: bool = True


@dataclass
class _Part:
    ts: str
    shown: str


@dataclass
class SlackReply:
    client: AsyncWebClient
    channel: str
    thread_ts: str
    recipient_user_id: str
    recipient_team_id: str
    limit: int
    features: SlackFeatures = field(default_factory=SlackFeatures)
    _stream_ts: str | None = None
    _streamed: str = ""
    _parts: list[_Part] = field(default_factory=list)
    _status_set: bool = False

    async def start(self) -> None:
        try:
            await self.client.assistant_threads_setStatus(
                channel_id=self.channel, thread_ts=self.thread_ts, status=THINKING
            )
            self._status_set = True
        except SlackApiError as exc:
            # Only assistant threads show a status; elsewhere Slack says no. Harmless.
            log.debug("no thinking status in %s: %s", self.channel, _error(exc))

    async def update(self, text: str) -> None:
        try:
            await self._show(text, final=False)
        except SlackApiError as exc:
            # A lost intermediate update is harmless: the next one or the final carries the text.
            log.warning("slack update failed in %s: %s", self.channel, _error(exc))

    async def finish(self, text: str) -> None:
        try:
            await self._show(text, final=True)
        except SlackApiError as exc:
            if exc.response.status_code == 429:
                # The retry handler already waited out several Retry-After periods.
                raise PlatformRateLimited(f"slack rate limit in {self.channel}") from exc
            raise
        await self._clear_status()

    async def fail(self, message: str) -> None:
        await self._end_stream()
        await self.client.chat_postMessage(
            channel=self.channel, thread_ts=self.thread_ts, text=f":warning: {message}"
        )
        await self._clear_status()

    # -- rendering ------------------------------------------------------------

    async def _show(self, text: str, *, final: bool) -> None:
        if not text:
            text = "_(empty answer)_"
        if await self._stream(text, final=final):
            return
        await self._end_stream()
        await self._render_parts(text)

    async def _stream(self, text: str, *, final: bool) -> bool:
        """Extend the native stream; False when the text cannot go there."""
        if self._parts or not self.features.streaming:
            return False
        if len(text) > self.limit or not text.startswith(self._streamed):
            return False
        delta = text[len(self._streamed) :]
        if self._stream_ts is None:
            try:
                response = await self.client.chat_startStream(
                    channel=self.channel,
                    thread_ts=self.thread_ts,
                    markdown_text=delta,
                    recipient_user_id=self.recipient_user_id,
                    recipient_team_id=self.recipient_team_id,
                )
            except SlackApiError as exc:
                if _error(exc) not in STREAMING_REFUSED:
                    raise
                log.info("native streaming refused (%s); posting and editing", _error(exc))
                self.features.streaming = False
                return False
            self._stream_ts = str(response["ts"])
        elif delta:
            await self.client.chat_appendStream(
                channel=self.channel, ts=self._stream_ts, markdown_text=delta
            )
        self._streamed = text
        if final:
            await self._end_stream()
        return True

    async def _end_stream(self) -> None:
        if self._stream_ts is None:
            return
        ts, self._stream_ts = self._stream_ts, None
        await self.client.chat_stopStream(channel=self.channel, ts=ts)
        # From now on the streamed message is an ordinary one that can be edited.
        self._parts.append(_Part(ts=ts, shown=self._streamed))

    async def _render_parts(self, text: str) -> None:
        for index, chunk in enumerate(split_message(text, self.limit)):
            if index < len(self._parts):
                part = self._parts[index]
                if part.shown != chunk:
                    await self._send(chunk, ts=part.ts)
                    part.shown = chunk
            else:
                ts = await self._send(chunk)
                self._parts.append(_Part(ts=ts, shown=chunk))

    async def _send(self, chunk: str, *, ts: str | None = None) -> str:
        """Post (or, with ``ts``, edit) one message: standard Markdown where the
        workspace takes ``markdown_text``, converted to mrkdwn where it does not."""
        if self.features.markdown_text:
            try:
                return await self._call(ts, markdown=chunk)
            except SlackApiError as exc:
                if _error(exc) not in MARKDOWN_REFUSED:
                    raise
                log.info("markdown_text refused (%s); sending mrkdwn", _error(exc))
                self.features.markdown_text = False
        return await self._call(ts, mrkdwn=markdown_to_mrkdwn(chunk))

    async def _call(
        self, ts: str | None, *, markdown: str | None = None, mrkdwn: str | None = None
    ) -> str:
        if ts is not None:
            await self.client.chat_update(
                channel=self.channel, ts=ts, markdown_text=markdown, text=mrkdwn
            )
            return ts
        response = await self.client.chat_postMessage(
            channel=self.channel, thread_ts=self.thread_ts, markdown_text=markdown, text=mrkdwn
        )
        return str(response["ts"])

    async def _clear_status(self) -> None:
        if self._status_set:
            try:
                await self.client.assistant_threads_setStatus(
                    channel_id=self.channel, thread_ts=self.thread_ts, status=""
                )
            except SlackApiError:
                pass


def _error(exc: SlackApiError) -> str:
    try:
        return str(exc.response.get("error") or exc.response.status_code)
    except Exception:
        return "unknown"
