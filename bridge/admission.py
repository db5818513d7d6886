"""Whether a question is taken, and what a refused person is told.

``bridge.policy`` judges who may ask; this adds what needs memory: the per-user
rate limit (a sliding minute) and how often a refused person hears about it.
The core asks ``check`` before it stores a question and calls ``taken`` after,
all under one lock, so a burst cannot slip past the limit.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from bridge.events import PlatformEvent
from bridge.policy import ACCESS, SILENT, AccessPolicy, Asker, Limits, Refusal, judge

RATE_WINDOW = 60.0  # seconds the per-user rate limit counts over
NOTICE_PERIOD = 3600.0  # a person refused for who they are hears it once an hour
MEMORY_SIZE = 10_000  # people remembered by the limiter and the notice memory

_NOTICES: dict[Refusal, str] = {
    Refusal.DIRECT: "I don't answer direct messages. Please ask in a channel where I'm available.",
    Refusal.DENIED_USER: "Sorry, you don't have access to this assistant.",
    Refusal.USER: "Sorry, you don't have access to this assistant.",
    Refusal.GUEST: "Sorry, this assistant is not available to guests.",
    Refusal.EXTERNAL: "Sorry, this assistant is only available to members of this organisation.",
    Refusal.DENIED_CHANNEL: "I'm not available in this channel.",
    Refusal.CHANNEL: "I'm not available in this channel.",
    Refusal.UNVERIFIED: "I couldn't confirm your access just now. Please try again in a minute.",
    Refusal.RATE: "You've asked {limit} questions in the last minute. Please wait a moment.",
    Refusal.TOO_LONG: (
        "Your message is {length:,} characters long; I can take up to {limit:,}."
        " Please shorten it and ask again."
    ),
    Refusal.BUSY: (
        "I answer one question at a time, and {limit} are already waiting in this thread."
        " Please ask again once they're answered."
    ),
    Refusal.EMPTY: "Put your question in the same message as the mention, and I'll answer it.",
}


@dataclass(frozen=True)
class Verdict:
    refusal: Refusal | None
    notice: str | None = None  # what the asker is told; None = silence


class _Window:
    """Timestamps per key within the last ``span`` seconds (oldest keys dropped first)."""

    def __init__(self, span: float, clock: Callable[[], float]) -> None:
        self._span = span
        self._clock = clock
        self._times: dict[str, deque[float]] = {}

    def count(self, key: str) -> int:
        times = self._times.get(key)
        if times is None:
            return 0
        cutoff = self._clock() - self._span
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._times[key]
            return 0
        return len(times)

    def add(self, key: str) -> None:
        times = self._times.pop(key, None) or deque()
        times.append(self._clock())
        self._times[key] = times  # most recently used last
        while len(self._times) > MEMORY_SIZE:
            del self._times[next(iter(self._times))]


class Admission:
    def __init__(
        self,
        policy: AccessPolicy,
        limits: Limits,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.limits = limits
        self._asked = _Window(RATE_WINDOW, clock)
        self._told_access = _Window(NOTICE_PERIOD, clock)
        self._told_rate = _Window(RATE_WINDOW, clock)

    def check(self, event: PlatformEvent, asker: Asker | None) -> Verdict:
        """The verdict on ``event`` before it is stored. ``asker`` None: a trusted local
        source (the console), judged on its text only."""
        refusal = self._refusal(event, asker)
        if refusal is None:
            return Verdict(None)
        return Verdict(refusal, self._notice(refusal, event, _person(event)))

    def check_rate(self, event: PlatformEvent) -> Verdict:
        """The verdict on an action that counts like a question (🔁 asks for another
        answer): the rate limit only, for ``event.author_id``."""
        if not self._over_rate(event):
            return Verdict(None)
        return Verdict(Refusal.RATE, self._notice(Refusal.RATE, event, _person(event)))

    def busy(self, event: PlatformEvent) -> Verdict:
        """The verdict when the thread is full."""
        return Verdict(Refusal.BUSY, self._notice(Refusal.BUSY, event, _person(event)))

    def taken(self, event: PlatformEvent) -> None:
        """Count a stored question against its asker's rate limit, each file it brings
        like one more question."""
        for _ in range(1 + len(event.files)):
            self._asked.add(_person(event))

    def _refusal(self, event: PlatformEvent, asker: Asker | None) -> Refusal | None:
        if asker is not None:
            refusal = judge(self.policy, asker)
            if refusal is not None:
                return refusal
        if not event.text.strip() and not event.files:  # a file alone is a question
            return Refusal.EMPTY
        if len(event.text) > self.limits.max_question_chars:
            return Refusal.TOO_LONG
        return Refusal.RATE if self._over_rate(event) else None

    def _over_rate(self, event: PlatformEvent) -> bool:
        limit = self.limits.user_rate_limit
        asked = self._asked.count(_person(event)) + len(event.files)
        return bool(limit) and asked >= limit

    def _notice(self, refusal: Refusal, event: PlatformEvent, person: str) -> str | None:
        if refusal in SILENT:
            return None
        if refusal in ACCESS and refusal is not Refusal.UNVERIFIED:
            if not self.limits.denied_notice or self._told_access.count(person):
                return None
            self._told_access.add(person)
        if refusal is Refusal.RATE:
            if self._told_rate.count(person):
                return None
            self._told_rate.add(person)
        limit = {
            Refusal.RATE: self.limits.user_rate_limit,
            Refusal.TOO_LONG: self.limits.max_question_chars,
            Refusal.BUSY: self.limits.max_queued_per_thread,
        }.get(refusal, 0)
        return _NOTICES[refusal].format(limit=limit, length=len(event.text))


def _person(event: PlatformEvent) -> str:
    return f"{event.thread.platform}:{event.author_id}"
