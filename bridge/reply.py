"""How the core talks back to a platform: a reply handle and its capabilities."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Capabilities:
    """Platform limits the core paces and splits by, instead of branching on the platform."""

    max_message_length: int  # characters one platform message may hold
    min_update_interval: float  # seconds between two updates of one reply


class ReplyHandle(Protocol):
    """One answer in one thread. The core calls ``start`` once, ``update`` zero or
    more times with the whole text so far, then exactly one of ``finish`` / ``fail``."""

    async def start(self) -> None: ...

    async def update(self, text: str) -> None: ...

    async def finish(self, text: str) -> None: ...

    async def fail(self, message: str) -> None: ...
