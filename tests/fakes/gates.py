"""Holds and delays on a fake server's calls, by key (a Slack method, a Discord route).

A test holds a call to see what the bridge does while it waits, or what is lost when the
bridge is killed meanwhile; it delays calls to make the platform slow. Each fake decides what
a key is and which keys a call answers to; this module only keeps the gates and waits on them.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

C = TypeVar("C")


@dataclass
class _Gate(Generic[C]):
    when: Callable[[C], object] | None  # None: every call of the key
    seconds: float = 0.0  # a delay's wait
    times: int | None = None  # calls a delay has left; None: until cleared
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def applies(self, call: C) -> bool:
        return self.when is None or bool(self.when(call))


class Gates(Generic[C]):
    """Holds (wait for ``release``) and delays (wait ``seconds``) on calls, by key."""

    def __init__(self) -> None:
        self.held: list[C] = []  # calls waiting on a hold right now
        self._holds: dict[str, list[_Gate[C]]] = defaultdict(list)
        self._delays: dict[str, list[_Gate[C]]] = defaultdict(list)

    def hold(self, key: str, when: Callable[[C], object] | None = None) -> None:
        """Make calls of ``key`` (those ``when`` accepts) wait for ``release``."""
        self._holds[key].append(_Gate(when))

    def release(self, key: str) -> None:
        """Let every held call of ``key`` proceed; later calls are not held."""
        for gate in self._holds.pop(key, []):
            gate.released.set()

    def release_all(self) -> None:
        """Release every hold (a test's clean-up: a stopping process must not hang on one)."""
        for key in list(self._holds):
            self.release(key)

    def delay(
        self,
        key: str,
        seconds: float,
        when: Callable[[C], object] | None = None,
        *,
        times: int | None = None,
    ) -> None:
        """Make calls of ``key`` (matching ``when``) wait ``seconds``: the next ``times`` of
        them, or all until ``delay(key, 0)`` clears every delay of ``key``."""
        if seconds <= 0:
            self._delays.pop(key, None)
            return
        self._delays[key].append(_Gate(when, seconds=seconds, times=times))

    async def pass_through(self, keys: Iterable[str], call: C) -> bool:
        """Wait out the delays and holds of ``keys`` that apply to ``call``; True if any did.

        Cancellation (aiohttp cancels a handler whose client left) propagates to the caller.
        """
        keys = tuple(keys)
        delays = [gate.seconds for gate in self._take_delays(keys, call)]
        holds = [g for key in keys for g in self._holds.get(key, ()) if g.applies(call)]
        if not delays and not holds:
            return False
        if holds:
            self.held.append(call)
        try:
            if delays:
                await asyncio.sleep(max(delays))
            for gate in holds:
                await gate.released.wait()
        finally:
            if call in self.held:
                self.held.remove(call)
        return True

    def _take_delays(self, keys: tuple[str, ...], call: C) -> list[_Gate[C]]:
        taken = []
        for key in keys:
            for gate in list(self._delays.get(key, ())):
                if not gate.applies(call):
                    continue
                taken.append(gate)
                if gate.times is not None:
                    gate.times -= 1
                    if gate.times <= 0:
                        self._delays[key].remove(gate)
        return taken
