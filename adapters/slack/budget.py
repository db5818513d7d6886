"""A Slack Web API call budget shared by every reply of the process.

Slack limits each method per workspace and app (its published tiers) and
``chat.postMessage`` to about one message a second per channel. Every reply
takes from the same token buckets (``aiolimiter``), so eight answers at once
stay under the tiers instead of provoking the 429s they would then wait out.

Two ways to take: ``try_take`` for an intermediate update (now or never: the
caller skips it and shows a newer text later) and ``take`` for a call that
must happen (start, final text, failure notice), which waits its turn. Waiting
callers go first: while one waits, ``try_take`` says no.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from aiolimiter import AsyncLimiter

POST = "chat.postMessage"


def _tiers() -> dict[str, float]:
    return {
        # Calls per minute per workspace (api.slack.com/apis/rate-limits).
        "chat.startStream": 20,  # Tier 2
        "chat.stopStream": 20,  # Tier 2
        "chat.update": 50,  # Tier 3
        "chat.delete": 50,  # Tier 3
        "assistant.threads.setStatus": 50,  # Tier 3
        "chat.appendStream": 100,  # Tier 4
    }


@dataclass(frozen=True)
class Rates:
    per_workspace: Mapping[str, float] = field(default_factory=_tiers)  # calls per window
    posts_per_channel: float = 1.0  # chat.postMessage, per second (scaled with the window)
    post_burst: float = 3.0  # short bursts Slack tolerates, at the same average
    window: float = 60.0  # "a minute"; tests shorten it to run out of budget quickly
    # Share of a tier that may go out at once. A bucket lets a burst through and then
    # refills, so burst + refill within any one window must stay within the tier.
    burst_share: float = 0.25

    def shared_by(self, replicas: int) -> Rates:
        """Each of ``replicas`` processes of one app gets 1/N of every limit."""
        return replace(
            self,
            per_workspace={m: tier / replicas for m, tier in self.per_workspace.items()},
            posts_per_channel=self.posts_per_channel / replicas,
            post_burst=max(1.0, self.post_burst / replicas),
        )


class SlackBudget:
    def __init__(self, rates: Rates | None = None) -> None:
        self._rates = rates or Rates()
        self._limiters: dict[tuple[str, str], AsyncLimiter] = {}
        self._waiting: Counter[tuple[str, str]] = Counter()
        self._paused_until: dict[tuple[str, str], float] = {}

    async def try_take(self, method: str, workspace: str, channel: str) -> bool:
        """Take one call of ``method`` if the budget has it right now; never waits."""
        keys = self._keys(method, workspace, channel)
        now = asyncio.get_running_loop().time()
        for key in keys:
            if self._waiting[key] or self._paused_until.get(key, 0.0) > now:
                return False
            if not self._limiter(key).has_capacity():
                return False
        for key in keys:
            # Capacity was just checked and nobody waits: acquire() returns at once.
            await self._limiter(key).acquire()
        return True

    async def take(self, method: str, workspace: str, channel: str) -> None:
        """Take one call of ``method``, waiting for the budget (and any 429 pause)."""
        loop = asyncio.get_running_loop()
        for key in self._keys(method, workspace, channel):
            self._waiting[key] += 1
            try:
                pause = self._paused_until.get(key, 0.0) - loop.time()
                if pause > 0:
                    await asyncio.sleep(pause)
                await self._limiter(key).acquire()
            finally:
                self._waiting[key] -= 1
                if not self._waiting[key]:
                    del self._waiting[key]

    def pause(self, method: str, workspace: str, channel: str, seconds: float) -> None:
        """Slack answered 429 with ``Retry-After: seconds``: hold this method back."""
        until = asyncio.get_running_loop().time() + seconds
        for key in self._keys(method, workspace, channel):
            self._paused_until[key] = max(self._paused_until.get(key, 0.0), until)

    def _keys(self, method: str, workspace: str, channel: str) -> list[tuple[str, str]]:
        if method == POST:
            return [(POST, channel)]
        if method in self._rates.per_workspace:
            return [(method, workspace)]
        return []  # look-ups and the like: the retry handler covers them

    def _limiter(self, key: tuple[str, str]) -> AsyncLimiter:
        limiter = self._limiters.get(key)
        if limiter is None:
            method = key[0]
            rates = self._rates
            if method == POST:
                seconds = rates.post_burst / rates.posts_per_channel
                limiter = AsyncLimiter(rates.post_burst, seconds * rates.window / 60.0)
            else:
                tier, share = rates.per_workspace[method], rates.burst_share
                # burst + refill over one window == tier: never more than the tier in a window
                # (tiny tiers, as in tests, still let one call through at once).
                burst = max(1.0, tier * share)
                refill = max(tier - burst, tier * (1 - share)) / rates.window
                limiter = AsyncLimiter(burst, burst / refill)
            self._limiters[key] = limiter
        return limiter
