"""Discord REST calls and 429s as /metrics counts them (adapters.discord.metered),
through the real discord.py client and the local Discord with its rate limits."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from adapters.discord.metered import meter
from tests.adapters.discord.conftest import Place

pytestmark = pytest.mark.timeout(30)

POST = "POST /channels/{channel_id}/messages"


def count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def waited_out() -> float:
    """Discord's 429s so far, over every route."""
    return sum(
        s.value
        for f in REGISTRY.collect()
        if f.name == "owui_bridge_platform_rate_limits"
        for s in f.samples
        if s.labels.get("platform") == "discord" and s.name.endswith("_total")
    )


async def test_calls_and_429s_are_counted_by_route_never_by_id(place: Place) -> None:
    ok = {"platform": "discord", "method": POST, "outcome": "ok"}
    meter(place.client)
    meter(place.client)  # once is enough: never counted twice
    calls, waits = count("owui_bridge_platform_calls_total", **ok), waited_out()
    target = place.client.get_partial_messageable(int(place.channel))
    place.fake.rate_limit_next(POST, retry_after=0.1)  # one 429, waited out by discord.py
    await asyncio.gather(*(target.send(f"m{n}") for n in range(8)))

    assert count("owui_bridge_platform_calls_total", **ok) - calls == 8
    assert waited_out() - waits == 1
    labels = {
        s.labels.get("method", "")
        for f in REGISTRY.collect()
        if f.name.startswith("owui_bridge_platform")
        for s in f.samples
    }
    assert not [m for m in labels if place.channel in m]  # ids never become label values
