"""Look-ups worth remembering: values kept for a while (``cachetools``), at most so
many, and one look-up per key at a time however many callers need it at once.

The adapters' facts about users, members, channels and threads all go through it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from cachetools import Cache, LRUCache, TTLCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Lookups(Generic[K, V]):
    """Values for ``ttl`` seconds (None: for good), at most ``size`` of them."""

    def __init__(
        self,
        ttl: float | None,
        size: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        keep_none: bool = False,  # None is an answer (e.g. "not a member"), not a miss
    ) -> None:
        self._keep_none = keep_none
        self._fresh: Cache[K, V] = (
            LRUCache(size) if ttl is None else TTLCache(size, ttl, timer=clock)
        )
        self._known: LRUCache[K, V] = LRUCache(size)  # however old, for ``peek``
        self._pending: dict[K, asyncio.Future[V | None]] = {}

    def peek(self, key: K) -> V | None:
        """The last value known, however old (for facts that rarely change)."""
        return self._known.get(key)

    def put(self, key: K, value: V) -> None:
        """Keep ``value`` as fresh (news from an event, not a look-up)."""
        self._fresh[key] = value
        self._known[key] = value

    def forget(self, key: K) -> None:
        self._fresh.pop(key, None)
        self._known.pop(key, None)

    async def get(
        self, key: K, fetch: Callable[[], Awaitable[V | None]], within: float | None = None
    ) -> V | None:
        """The fresh value, else ``fetch()``'s (kept unless None, see ``keep_none``);
        None when it takes longer than ``within`` seconds. Callers waiting on one
        look-up resume in the order they asked (so questions waiting on it keep their
        delivery order); an error of the look-up reaches each of them, nothing kept."""
        if key in self._fresh:
            return self._fresh[key]
        future = self._pending.get(key)
        if future is None:
            future = asyncio.ensure_future(self._fetch(key, fetch))
            self._pending[key] = future
        try:
            # Shielded: a caller giving up leaves the look-up to finish for the next one.
            return await asyncio.wait_for(asyncio.shield(future), within)
        except TimeoutError:
            return None

    async def _fetch(self, key: K, fetch: Callable[[], Awaitable[V | None]]) -> V | None:
        try:
            value = await fetch()
        finally:
            del self._pending[key]
        if value is not None or self._keep_none:
            self.put(key, value)  # type: ignore[arg-type]
        return value
