"""bridge.cache: expiry, size bound, one look-up at a time, errors not kept."""

from __future__ import annotations

import asyncio

import pytest

from bridge.cache import Lookups


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_value_is_looked_up_again_once_it_expired() -> None:
    clock = Clock()
    calls: list[str] = []

    async def fetch() -> str:
        calls.append("x")
        return f"v{len(calls)}"

    lookups: Lookups[str, str] = Lookups(10, 5, clock)
    assert await lookups.get("k", fetch) == "v1"
    clock.now = 9
    assert await lookups.get("k", fetch) == "v1"
    clock.now = 11
    assert await lookups.get("k", fetch) == "v2"
    assert lookups.peek("k") == "v2"


async def test_callers_at_once_share_one_look_up_and_resume_in_order() -> None:
    gate = asyncio.Event()
    calls = 0
    order: list[int] = []

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        return "v"

    lookups: Lookups[str, str] = Lookups(None, 5)

    async def ask(n: int) -> None:
        await lookups.get("k", fetch)
        order.append(n)

    tasks = [asyncio.create_task(ask(n)) for n in range(4)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)
    assert calls == 1
    assert order == [0, 1, 2, 3]


async def test_an_error_reaches_the_caller_and_is_not_kept() -> None:
    async def broken() -> str:
        raise OSError("down")

    async def fine() -> str:
        return "ok"

    lookups: Lookups[str, str] = Lookups(10, 5)
    with pytest.raises(OSError):
        await lookups.get("k", broken)
    assert await lookups.get("k", fine) == "ok"


async def test_none_is_a_miss_unless_kept_and_the_oldest_value_goes_first() -> None:
    calls = 0

    async def nothing() -> None:
        nonlocal calls
        calls += 1
        return None

    misses: Lookups[str, str] = Lookups(10, 5)
    await misses.get("k", nothing)
    await misses.get("k", nothing)
    assert calls == 2
    kept: Lookups[str, str | None] = Lookups(10, 5, keep_none=True)
    await kept.get("k", nothing)
    await kept.get("k", nothing)
    assert calls == 3

    small: Lookups[int, int] = Lookups(None, 2)
    for n in range(3):
        small.put(n, n)
    assert [small.peek(n) for n in range(3)] == [None, 1, 2]


async def test_a_caller_who_gives_up_leaves_the_look_up_to_the_next() -> None:
    gate = asyncio.Event()

    async def slow() -> str:
        await gate.wait()
        return "late"

    lookups: Lookups[str, str] = Lookups(10, 5)
    assert await lookups.get("k", slow, within=0.01) is None
    gate.set()
    assert await lookups.get("k", slow) == "late"
