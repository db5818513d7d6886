"""A Discord REST call budget shared by every call of the process (one bot, one client).
Per process: processes holding other shards of the same bot each have their own, while
Discord's global limit counts the bot's calls from all of them (README, Shards).

Discord allows a bot 50 requests a second in all (the global limit) and a few calls
per route and channel (buckets, announced in every answer's ``X-RateLimit-*``
headers, which discord.py keeps). discord.py waits out a bucket it knows is empty,
but learns of the global limit only from 429s: hundreds of answers at once hit it
over and over, and a call gives up after its fifth 429. So every REST call of the
client first takes from one token bucket (``aiolimiter``), at ``Rates.per_second``.

Two ways to take. A call made inside ``skippable()`` (an intermediate update, a
typing indicator) goes now or raises ``Skipped`` without being sent: when the
budget has no room, when another call is waiting for it, or when discord.py's bucket
for that route and channel is empty (the call would wait there). Any other call (a
final text, a failure notice, opening a thread, a look-up) waits its turn. A global
429 (which discord.py logs) holds the budget back for its ``retry_after``.
Interaction callbacks are outside the global limit, and outside the budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import discord
from aiolimiter import AsyncLimiter

# Requests a second, sustained. Discord's global limit is 50: the rest is headroom for
# the calls discord.py sends again after a 429 (past the budget) and for Discord's
# one-second windows not lining up with ours.
GLOBAL_RATE = 40.0
# Calls that may go out at once after a quiet moment: burst plus one second's refill
# (45) stays under the 50 of any one second.
BURST = 5.0
# Not bound by the bot's global limit (Discord's docs: interaction endpoints).
_EXEMPT = ("/interactions/", "/webhooks/{webhook_id}/{webhook_token}")

_skippable: ContextVar[bool] = ContextVar("discord_call_skippable", default=False)
_budgets: weakref.WeakSet[DiscordBudget] = weakref.WeakSet()


class Skipped(Exception):
    """No room for an intermediate call right now; nothing was sent."""


@contextlib.contextmanager
def skippable() -> Iterator[None]:
    """REST calls made inside go now or raise ``Skipped``; they never wait."""
    token = _skippable.set(True)
    try:
        yield
    finally:
        _skippable.reset(token)


@dataclass(frozen=True)
class Rates:
    per_second: float = GLOBAL_RATE
    burst: float = BURST

    @classmethod
    def shared_by(cls, replicas: int) -> Rates:
        """Each of ``replicas`` processes of one bot gets 1/N of the global limit."""
        return cls(GLOBAL_RATE / replicas, max(1.0, BURST / replicas))


class DiscordBudget:
    def __init__(self, rates: Rates | None = None) -> None:
        rates = rates or Rates()
        self._limiter = AsyncLimiter(rates.burst, rates.burst / rates.per_second)
        self._waiting = 0
        self._paused_until = 0.0  # time.monotonic()

    async def try_take(self) -> bool:
        """One call if the budget has it now and nobody waits for it; never waits."""
        if self._waiting or self._paused_until > time.monotonic():
            return False
        if not self._limiter.has_capacity():
            return False
        await self._limiter.acquire()  # capacity was just checked: returns at once
        return True

    async def take(self) -> None:
        """One call, waiting for the budget (and any global 429's pause)."""
        self._waiting += 1
        try:
            pause = self._paused_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            await self._limiter.acquire()
        finally:
            self._waiting -= 1

    def pause(self, seconds: float) -> None:
        """Discord answered a global 429: no call for ``seconds``."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)


def attach(client: discord.Client, budget: DiscordBudget | None = None) -> DiscordBudget:
    """Make every REST call of ``client`` take from ``budget`` (a new one if None);
    a client already budgeted keeps its budget."""
    http = client.http
    existing: DiscordBudget | None = getattr(http, "_owui_budget", None)
    if existing is not None:
        return existing
    budget = budget or DiscordBudget()
    request = http.request

    async def budgeted(route: discord.http.Route, **kwargs: Any) -> Any:
        if not route.path.startswith(_EXEMPT):
            if _skippable.get():
                if not (_bucket_has_room(http, route) and await budget.try_take()):
                    raise Skipped(f"{route.method} {route.path}")
            else:
                await budget.take()
        return await request(route, **kwargs)

    http.request = budgeted  # type: ignore[method-assign]
    http._owui_budget = budget  # type: ignore[attr-defined]
    _budgets.add(budget)
    http_log = logging.getLogger("discord.http")
    if _pause_on_global_429 not in http_log.filters:
        http_log.addFilter(_pause_on_global_429)
    return budget


def _bucket_has_room(http: Any, route: discord.http.Route) -> bool:
    """Whether discord.py would send a call on ``route`` at once rather than wait for its
    bucket (per route and channel). Read from discord.py's own state (``HTTPClient.request``
    finds the bucket the same way); where that is not there, room is assumed."""
    hashes = getattr(http, "_bucket_hashes", None)
    buckets = getattr(http, "_buckets", None)
    if not isinstance(hashes, dict) or not isinstance(buckets, dict):
        return True
    bucket = buckets.get(f"{hashes.get(route.key, route.key)}:{route.major_parameters}")
    try:
        if bucket is None or bucket.is_expired():
            return True
        return bool(bucket.remaining > 0 and not bucket._pending_requests)
    except AttributeError:
        return True


def _pause_on_global_429(record: logging.LogRecord) -> bool:
    """discord.py logs "Global rate limit has been hit. Retrying in %.2f seconds." and
    then sleeps; the budget holds every other call back as long."""
    if str(record.msg).startswith("Global rate limit has been hit") and record.args:
        try:
            seconds = float(record.args[0])  # type: ignore[index,arg-type]
        except (TypeError, ValueError, IndexError, KeyError):
            return True
        for budget in list(_budgets):
            budget.pause(seconds)
    return True
