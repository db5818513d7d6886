"""Replicas of one Slack app share Slack's per-workspace limits: with
``BRIDGE_REPLICAS=N`` each process spends 1/N of every tier."""

from __future__ import annotations

import pytest

from adapters.slack.budget import Rates, SlackBudget
from adapters.slack.settings import SlackSettings


async def calls_at_once(budget: SlackBudget, method: str) -> int:
    """How many calls of ``method`` go out at once in one workspace (a burst)."""
    sent = 0
    while await budget.try_take(method, "T1", "C1") and sent < 1000:
        sent += 1
    return sent


@pytest.mark.parametrize("method", ["chat.update", "chat.appendStream", "chat.postMessage"])
async def test_each_of_two_replicas_sends_half_as_much(method: str) -> None:
    alone = await calls_at_once(SlackBudget(Rates()), method)
    shared = await calls_at_once(SlackBudget(Rates().shared_by(2)), method)
    assert alone >= 2
    assert shared <= alone / 2 + 0.5


def test_the_replica_count_comes_from_bridge_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SlackSettings().replicas == 1
    monkeypatch.setenv("BRIDGE_REPLICAS", "3")
    assert SlackSettings().replicas == 3
