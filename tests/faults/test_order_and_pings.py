"""Order in a thread when a look-up is slow; model output that would ping people."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.conftest import ALICE, BOB, CHANNEL, Faults, asked, assert_clean
from tests.faults.judge import active_path, judge, message_text, shown
from tests.harness.model_server import expected_reply


async def test_slow_lookup_does_not_reorder_a_thread(
    faults: Faults, capsys: pytest.CaptureFixture[str]
) -> None:
    # Alice's name takes 2 s to look up; Bob asks 50 ms after her, in her thread.
    faults.fake.delay("users.info", 2.0, when=lambda params: params.get("user") == ALICE)
    await faults.start()
    q1, q2 = "q1 first [[words=20]]", "q2 second [[words=20]]"
    thread = await faults.say(ALICE, q1)
    await asyncio.sleep(0.05)
    await faults.say(BOB, q2, thread_ts=thread)

    questions = [asked(ALICE, q1), asked(BOB, q2)]
    verdict = await faults.wait_answered(thread, questions, timeout=30)
    faults.report(capsys, "slow-lookup-order", verdict)
    assert_clean(verdict, faults, thread)
    assert verdict.in_order, "A2 appeared before A1"
    history = await faults.assert_tree(thread)
    path = active_path(history)
    assert [m.get("role") for m in path] == ["user", "assistant", "user", "assistant"]
    assert "q1 first" in message_text(path[0]) and "q2 second" in message_text(path[2])
    assert [shown(message_text(path[i])) for i in (1, 3)] == [expected_reply(q) for q in questions]


def _same_words(seen: str, expected: str) -> bool:
    # A neutralised mention may read differently ("@channel"); the answer is complete
    # when it starts like the expected one and ends with the same filler words.
    head, _, tail = expected.partition('":')
    return shown(seen).startswith(head[:20]) and shown(seen).endswith(tail)


async def test_model_output_pings_nobody(
    faults: Faults, capsys: pytest.CaptureFixture[str]
) -> None:
    await faults.start()
    # Slack escapes what a person types, so the model reads "<!channel> <@U123> <!here>"
    # and the fake model echoes it at the start of its answer.
    text = "&lt;!channel&gt; &lt;@U123&gt; &lt;!here&gt; [[words=12]]"
    thread = await faults.say(ALICE, text)
    question = asked(ALICE, "<!channel> <@U123> <!here> [[words=12]]")
    assert "<!channel> <@U123> <!here>" in expected_reply(question)
    await faults.fake.wait_for(
        lambda: judge([question], faults.replies(thread), same=_same_words).answers == 1,
        timeout=30,
        what="the answer",
    )
    await asyncio.sleep(1.5)
    verdict = judge([question], faults.replies(thread), same=_same_words)
    faults.report(capsys, "model-output-pings", verdict)
    assert_clean(verdict, faults, thread)
    assert [(m.ts, form) for m, form in faults.fake.pings(CHANNEL)] == []
