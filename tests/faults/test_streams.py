"""Slack ends a native stream early, or a person presses stop on it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from tests.faults.conftest import ALICE, CHANNEL, Faults, asked, assert_clean
from tests.faults.judge import Verdict, active_path, judge, message_text, shown
from tests.harness.model_server import expected_reply

STREAM_CALLS = ("chat.appendStream", "chat.stopStream")
STOPPED = "\n\n_(stopped)_"  # how a stopped answer ends (bridge.delivery)


async def test_stream_ended_by_slack_still_shows_the_whole_answer(
    faults: Faults, capsys: pytest.CaptureFixture[str]
) -> None:
    # Slack's ~5-minute cut-off, shrunk: 2 s of a 6 s answer.
    faults.fake.stream_max_age = 2.0
    await faults.start()
    question = "cut off [[words=60]] [[delay=0.3]]"
    thread = await faults.say(ALICE, question)
    verdict = await faults.wait_answered(thread, [asked(ALICE, question)], timeout=30)
    faults.report(capsys, "stream-ended-by-slack", verdict)
    assert_clean(verdict, faults, thread)
    answer = verdict.answer_messages[0]
    assert answer is not None and answer.stream_ended_by == "slack", "the stream was not cut"
    await faults.assert_tree(thread)


async def test_stream_stopped_by_the_user(
    faults: Faults, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = faults.fake
    await faults.start()
    q1, q2 = "q1 stop me [[words=200]] [[delay=0.1]]", "q2 after stop [[words=15]]"
    thread = await faults.say(ALICE, q1)
    await fake.wait_for_calls("chat.appendStream", timeout=30)
    (streamed,) = faults.replies(thread)
    fake.stop_stream_by_user(CHANNEL, streamed.ts)
    stopped_at, showed = time.monotonic(), streamed.text
    await asyncio.sleep(2)  # the bridge learns of the stop at its next append
    await faults.say(ALICE, q2, thread_ts=thread)

    questions = [asked(ALICE, q1), asked(ALICE, q2)]
    verdict = await wait_answered_unmarked(faults, thread, questions)
    faults.report(capsys, "stream-stopped-by-user", verdict)
    assert_clean(verdict, faults, thread)
    assert verdict.in_order
    # The stopped message keeps what it showed, marked stopped; the bridge streams no
    # more into it (one call may still meet the stop: that is how it learns).
    stopped = verdict.answer_messages[0]
    assert stopped is not None and stopped.ts == streamed.ts
    assert streamed.text == showed.rstrip() + STOPPED
    late = [
        c
        for c in fake.calls
        if c.method in STREAM_CALLS and c.params.get("ts") == streamed.ts and c.at > stopped_at
    ]
    assert len(late) <= 1, [c.method for c in late]
    # Open WebUI: Q1, the part of A1 that exists, Q2 chained under it, A2; one root.
    history = await faults.assert_tree(thread)
    path = active_path(history)
    assert [m.get("role") for m in path] == ["user", "assistant", "user", "assistant"]
    assert "q1 stop me" in message_text(path[0]) and "q2 after stop" in message_text(path[2])
    assert expected_reply(questions[0]).startswith(shown(message_text(path[1])))
    assert shown(message_text(path[3])) == expected_reply(questions[1])


async def wait_answered_unmarked(
    faults: Faults, thread: str, questions: list[str], timeout: float = 30.0
) -> Verdict:
    """``faults.wait_answered`` for a thread whose first answer was stopped: the
    stopped message is judged by what it showed, its "(stopped)" mark left out."""

    def verdict() -> Verdict:
        seen = [replace(m, text=m.text.removesuffix(STOPPED)) for m in faults.replies(thread)]
        return judge(questions, seen, partial_ok=(0,))

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and verdict().answers < len(questions):
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.5)  # late duplicates show up too
    return verdict()
