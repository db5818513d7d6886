"""Gates: the holds and delays FakeSlack and FakeDiscord put on calls."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.gates import Gates


async def test_a_hold_keeps_the_calls_it_matches_until_its_key_is_released() -> None:
    gates: Gates[str] = Gates()
    gates.hold("chat.update", when=lambda call: call.startswith("final"))
    gates.hold("chat.delete")
    held = asyncio.create_task(gates.pass_through(["chat.update"], "final edit"))
    other = asyncio.create_task(gates.pass_through(["chat.delete"], "delete"))
    assert await gates.pass_through(["chat.update"], "first edit") is False  # not matched
    await asyncio.sleep(0)
    assert gates.held == ["final edit", "delete"]
    gates.release("chat.update")
    assert await held is True
    assert gates.held == ["delete"] and not other.done()
    assert await gates.pass_through(["chat.update"], "final again") is False  # hold gone
    gates.release_all()
    assert await other is True and gates.held == []


async def test_a_delay_with_times_lets_later_calls_through() -> None:
    gates: Gates[str] = Gates()
    gates.delay("POST /channels/1/messages", 60, times=1)
    first = asyncio.create_task(gates.pass_through(["POST /channels/1/messages"], "one"))
    await asyncio.sleep(0)
    assert await gates.pass_through(["POST /channels/1/messages"], "two") is False
    assert not first.done()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_delay_without_times_stays_until_cleared() -> None:
    gates: Gates[str] = Gates()
    gates.delay("users.info", 60)
    calls = [asyncio.create_task(gates.pass_through(["users.info"], n)) for n in "ab"]
    await asyncio.sleep(0)
    assert not any(call.done() for call in calls)
    gates.delay("users.info", 0)
    assert await gates.pass_through(["users.info"], "c") is False
    for call in calls:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)
