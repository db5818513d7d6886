"""Slack throttles: a 429 storm longer than the answer timeout, eight answers at once."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.conftest import ALICE, CHANNEL, Faults, asked, assert_clean
from tests.faults.judge import Verdict, combine, judge

THREADS = 8
STORM = 12.0
ANSWER_TIMEOUT = 8  # shorter than the storm: only the model may count against it


async def test_429_storm_during_eight_answers(
    faults: Faults, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = faults.fake
    fake.enforce_tiers = True  # Slack's published rates, besides the storm
    await faults.start(BRIDGE_ANSWER_TIMEOUT=str(ANSWER_TIMEOUT))
    questions = [f"t{i} storm [[words=30]] [[delay=0.3]]" for i in range(THREADS)]
    threads = [await faults.say(ALICE, q) for q in questions]
    await fake.wait_for(
        lambda: any(faults.replies(t) for t in threads), timeout=30, what="the first answer"
    )
    fake.storm(STORM)
    await asyncio.sleep(STORM)

    asked_per_thread = [[asked(ALICE, q)] for q in questions]

    def verdicts() -> list[Verdict]:
        return [judge(a, faults.replies(t)) for t, a in zip(threads, asked_per_thread, strict=True)]

    try:
        await fake.wait_for(
            lambda: all(v.answers == 1 for v in verdicts()), timeout=30, what="every answer"
        )
    except TimeoutError:
        pass  # judged below
    await asyncio.sleep(1.5)  # late duplicates or warnings
    verdict = combine(verdicts())
    faults.report(capsys, "429-storm-8-answers", verdict)
    too_slow = [m.text for m in fake.channel_view(CHANNEL) if "too long" in m.text.lower()]
    assert too_slow == []
    assert fake.rate_limited, "the storm never met a call"
    assert_clean(verdict, faults, *threads)
