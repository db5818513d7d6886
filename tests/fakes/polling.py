"""Waiting for a fake's state: the app under test reacts asynchronously, so tests poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def wait_until(
    predicate: Callable[[], object], *, timeout: float, what: str, who: str
) -> None:
    """Poll ``predicate`` until truthy; TimeoutError naming ``who`` and ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{who}: timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
