"""How one reply's Web API calls go out: within the process's budget, through 429s
for as long as the call is worth it, with the answer's metadata, in standard Markdown
where the channel takes it.

Not ``urgent`` (an intermediate update): now or ``Skipped``, never waited on.
``urgent`` (start, final text, failure notice): waits for the budget, and through 429s
for ``patience`` seconds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.slack.budget import SlackBudget
from adapters.slack.features import MARKDOWN_NOT_HERE, Recipient, Refusals
from adapters.slack.posts import MAX_PAGES, PAGE, Found, metadata, read
from adapters.slack.text import markdown_to_mrkdwn
from bridge.errors import PlatformRateLimited
from bridge.split import split_message

log = logging.getLogger(__name__)

# markdown_text (and the markdown block) take up to 12,000 characters; text 40,000.
MESSAGE_LIMIT = 12_000
TEXT_LIMIT = 40_000
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
    # The answer's name in its messages' metadata (stable across restarts), the question
    # the answer follows, and the bot: what finds a message whose post lost its answer.
    turn: str = ""
    question_ts: str = ""
    bot_user: str = ""
    assistant: bool = False  # an assistant thread: it shows "is thinking…" until the answer


class Skipped(Exception):
    """No budget for an intermediate update right now."""


class SlackCalls:
    """The calls of one reply (to one ``Target``)."""

    def __init__(self, output: SlackOutput, target: Target) -> None:
        self._out = output
        self._to = target

    async def send(self, chunk: str, ts: str | None, urgent: bool, part: int) -> str:
        """Post (or, with ``ts``, edit) one message: standard Markdown where the
        channel takes ``markdown_text``, converted to mrkdwn where it does not."""
        to = self._to
        if not self._out.refusals.markdown_refused(to.workspace, to.channel):
            try:
                return await self._write(ts, urgent, part, markdown_text=chunk)
            except SlackApiError as exc:
                if error(exc) not in MARKDOWN_NOT_HERE:
                    raise
                log.info("markdown_text refused in %s (%s); mrkdwn", to.channel, error(exc))
                self._out.refusals.refuse_markdown(to.workspace, to.channel)
        return await self._write(ts, urgent, part, text=markdown_to_mrkdwn(chunk))

    async def _write(self, ts: str | None, urgent: bool, part: int, **content: str) -> str:
        if ts is None:
            response = await self.call(
                "chat.postMessage",
                urgent,
                channel=self._to.channel,
                thread_ts=self._to.thread_ts,
                metadata=self.metadata(part),
                **content,
            )
            return str(response["ts"])
        await self.call(
            "chat.update",
            urgent,
            channel=self._to.channel,
            ts=ts,
            metadata=self.metadata(part),
            **content,
        )
        return ts

    def metadata(self, part: int) -> dict[str, Any] | None:
        return metadata(self._to.turn, part) if self._to.turn else None

    async def delete(self, ts: str, urgent: bool) -> None:
        try:
            await self.call("chat.delete", urgent, channel=self._to.channel, ts=ts)
        except SlackApiError as exc:
            if error(exc) not in MESSAGE_GONE:
                raise

    async def stop_quietly(self, ts: str, urgent: bool = True) -> None:
        """Stop a stream that may be open; whatever Slack says, editing comes next."""
        try:
            channel, meta = self._to.channel, self.metadata(0)
            await self.call("chat.stopStream", urgent, channel=channel, ts=ts, metadata=meta)
        except (PlatformRateLimited, *CALL_ERRORS) as exc:
            log.debug("stopping stream %s: %s", ts, describe(exc))

    async def set_status(self, status: str) -> None:
        await self.call(
            "assistant.threads.setStatus",
            False,
            channel_id=self._to.channel,
            thread_ts=self._to.thread_ts,
            status=status,
        )

    async def call(self, method: str, urgent: bool, **params: Any) -> AsyncSlackResponse:
        """One Web API call within the budget. Not ``urgent``: now or ``Skipped``.
        ``urgent``: waits for the budget, and through 429s for ``patience`` seconds."""
        to, budget = self._to, self._out.budget
        body = {key: value for key, value in params.items() if value is not None}
        if not urgent:
            if not await budget.try_take(method, to.workspace, to.channel):
                raise Skipped(method)
            try:
                return await self._out.quick.api_call(method, json=body)
            except SlackApiError as exc:
                if exc.response.status_code != 429:
                    raise
                budget.pause(method, to.workspace, to.channel, retry_after(exc))
                raise Skipped(method) from exc
        deadline = time.monotonic() + self._out.patience
        while True:
            await budget.take(method, to.workspace, to.channel)
            try:
                return await self._out.client.api_call(method, json=body)
            except SlackApiError as exc:
                if exc.response.status_code != 429:
                    raise
                # The retry handler already waited out several Retry-After periods.
                wait = retry_after(exc)
                if time.monotonic() + wait > deadline:
                    raise PlatformRateLimited(
                        f"slack kept rate limiting {method} in {to.channel}"
                    ) from exc
                budget.pause(method, to.workspace, to.channel, wait)

    async def find(self) -> Found:
        """This answer's messages in the thread after its question."""
        to = self._to
        parts: dict[int, str] = {}
        unmarked: list[str] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            response = await self._out.client.conversations_replies(
                channel=to.channel,
                ts=to.thread_ts,
                oldest=to.question_ts or None,
                include_all_metadata=True,
                limit=PAGE,
                cursor=cursor,
            )
            page = read(response.get("messages") or [], to.turn, to.bot_user, to.question_ts)
            for part, ts in page.parts.items():
                parts.setdefault(part, ts)
            unmarked.extend(page.unmarked)
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return Found(parts, unmarked)


def fitting(text: str, limit: int) -> list[str]:
    """``text`` in parts of at most ``limit`` characters whose mrkdwn form (the fallback
    where a channel refuses ``markdown_text``) fits ``text``'s 40,000 too: escaping can
    make a part five times longer (``&`` is ``&amp;``)."""
    parts: list[str] = []
    for chunk in split_message(text, limit):
        if len(markdown_to_mrkdwn(chunk)) <= TEXT_LIMIT or len(chunk) < 2:
            parts.append(chunk)
        else:
            parts.extend(fitting(chunk, len(chunk) // 2))
    return parts


def error(exc: SlackApiError) -> str:
    try:
        return str(exc.response.get("error") or exc.response.status_code)
    except Exception:
        return "unknown"


def describe(exc: BaseException) -> str:
    return error(exc) if isinstance(exc, SlackApiError) else type(exc).__name__


def retry_after(exc: SlackApiError) -> float:
    try:
        return max(float(exc.response.headers.get("Retry-After", 1)), 0.0)
    except (TypeError, ValueError):
        return 1.0
