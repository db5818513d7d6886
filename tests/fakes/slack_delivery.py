"""How Slack delivers an event until the app acknowledges it: the 3-second deadline and the
redeliveries that follow, for the fake Slack server (HTTP Events API and Socket Mode).

From Slack's Events API docs (https://docs.slack.dev/apis/events-api/#retries, formerly
https://api.slack.com/apis/events-api#retries): the app must answer 2xx within 3 seconds;
otherwise Slack retries up to 3 times, "nearly immediately", then after 1 minute, then after
5 minutes, with ``X-Slack-Retry-Num`` (1, 2, 3) and ``X-Slack-Retry-Reason`` (``http_timeout``
when no answer came in time, ``http_error`` for a non-2xx answer, ``connection_failed``, …).
A timed-out request is not waited for: the retry goes out while it may still be running. An
error answer carrying ``X-Slack-No-Retry: 1`` stops the retries. Socket Mode envelopes must be
acknowledged within the same deadline and are sent again with ``retry_attempt`` /
``retry_reason`` (the reason's value for a missing ack, "timeout", is unverified).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

ACK_DEADLINE = 3.0  # seconds
RETRY_DELAYS = (0.0, 60.0, 300.0)  # before retry 1, 2, 3
SOCKET_RETRY_REASON = "timeout"  # unverified, see above


@dataclass
class Attempt:
    """One delivery of an event: the first (``retry_num`` 0) or a retry."""

    retry_num: int
    reason: str  # "" on the first delivery
    sent_at: float
    status: int | None = None  # HTTP status; 200 for a Socket Mode ack; None: none (yet)
    answered_at: float | None = None


@dataclass
class Delivery:
    """An event and every attempt Slack made to deliver it."""

    payload: dict[str, Any]
    attempts: list[Attempt] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    acknowledged: bool = False

    @property
    def retries(self) -> list[Attempt]:
        return [a for a in self.attempts if a.retry_num > 0]

    async def finished(self, timeout: float | None = None) -> Delivery:
        await asyncio.wait_for(self.done.wait(), timeout)
        return self


@dataclass(frozen=True)
class Answer:
    """What one attempt got: an HTTP status (None: no connection) and whether to stop."""

    status: int | None
    no_retry: bool = False


Send = Callable[[Attempt], Awaitable[Answer]]


async def deliver(
    delivery: Delivery,
    send: Send,
    *,
    deadline: float = ACK_DEADLINE,
    delays: tuple[float, ...] = RETRY_DELAYS,
    scale: float = 1.0,
    first: int = 0,
    timeout_reason: str = "http_timeout",
) -> Delivery:
    """Deliver until an attempt is answered 2xx within ``deadline`` or the retries run out.

    ``scale`` shortens the waits between retries (not the deadline); ``first`` is the retry
    number the first attempt carries (a test replaying a retry by hand).
    """
    reason = ""
    pending: set[asyncio.Task[Answer]] = set()
    try:
        last = max(first, len(delays))  # Slack's last retry is number 3
        for number in range(first, last + 1):
            attempt = Attempt(number, reason, time.monotonic())
            delivery.attempts.append(attempt)
            task = asyncio.create_task(_run(attempt, send))
            pending.add(task)
            task.add_done_callback(pending.discard)
            try:
                answer = await asyncio.wait_for(asyncio.shield(task), deadline)
            except TimeoutError:
                reason = timeout_reason  # the late answer is still recorded on the attempt
            else:
                if answer.status is not None and 200 <= answer.status < 300:
                    delivery.acknowledged = True
                    return delivery
                if answer.no_retry:
                    return delivery
                reason = "connection_failed" if answer.status is None else "http_error"
            if number < len(delays):
                await asyncio.sleep(delays[number] * scale)
        return delivery
    finally:
        delivery.done.set()
        # Let answers still in flight land on their attempts, briefly; then give up on them.
        try:
            if pending:
                await asyncio.wait(pending, timeout=max(deadline, 1.0))
        finally:
            for task in list(pending):
                task.cancel()


async def _run(attempt: Attempt, send: Send) -> Answer:
    answer = await send(attempt)
    attempt.status = answer.status
    attempt.answered_at = time.monotonic()
    return answer
