"""The bridge is killed or stopped while it answers, then started again on the same
database: every question still ends in exactly one complete answer, in place."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.faults.conftest import ALICE, CHANNEL, Faults, asked, assert_clean
from tests.faults.judge import active_path, message_text, shown
from tests.harness.model_server import expected_reply


async def _wait_partial(faults: Faults, thread: str, question: str) -> str:
    """Wait until part of the answer to ``question`` is on screen; return its message ts."""
    expected = expected_reply(question)

    def partial() -> str | None:
        for message in faults.replies(thread):
            text = shown(message.text)
            if text and text != expected and expected.startswith(text):
                return message.ts
        return None

    await faults.fake.wait_for(partial, timeout=30, what="part of the answer on screen")
    ts = partial()
    assert ts is not None
    return ts


async def _assert_chain(faults: Faults, thread: str, questions: list[str]) -> None:
    """The chat shows question, answer, question, answer… in order, from one root."""
    history = await faults.assert_tree(thread)
    path = active_path(history)
    assert [m.get("role") for m in path] == ["user", "assistant"] * len(questions)
    for i, question in enumerate(questions):
        marker = question.split(": ", 1)[1].split(" [[")[0]
        assert marker in message_text(path[2 * i]), (i, message_text(path[2 * i]))
        assert shown(message_text(path[2 * i + 1])) == expected_reply(question)


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
async def test_two_questions_in_one_thread_survive_a_stop(
    faults: Faults, capsys: pytest.CaptureFixture[str], signal_name: str
) -> None:
    # SIGKILL cuts A1 mid-stream. SIGTERM drains for up to 30 s: A1 (~22 s) ends in the
    # drain, A2 (~10 s, queued behind it) cannot, so the restart must finish it.
    name = signal_name.lower()
    if signal_name == "SIGKILL":
        q1, q2 = f"q1 {name} [[words=80]] [[delay=0.1]]", f"q2 {name} [[words=20]]"
    else:
        q1 = f"q1 {name} [[words=450]] [[delay=0.15]]"
        q2 = f"q2 {name} [[words=150]] [[delay=0.2]]"
    bridge = await faults.start()
    thread = await faults.say(ALICE, q1)
    questions = [asked(ALICE, q1), asked(ALICE, q2)]
    first_ts = await _wait_partial(faults, thread, questions[0])
    await faults.say(ALICE, q2, thread_ts=thread)  # while A1 streams
    # Bolt acks before its listener runs: give the bridge a moment to take Q2 in.
    await asyncio.sleep(0.5)

    if signal_name == "SIGKILL":
        await faults.kill(bridge)
    else:
        bridge.terminate()
        await bridge.wait(40)  # the drain is 30 s at most
    await faults.start()

    verdict = await faults.wait_answered(thread, questions, timeout=30)
    faults.report(capsys, f"two-questions-{signal_name.lower()}", verdict)
    assert_clean(verdict, faults, thread)
    assert verdict.in_order
    a1 = verdict.answer_messages[0]
    assert a1 is not None and a1.ts == first_ts, "A1 was not finished in place"
    await _assert_chain(faults, thread, questions)


@pytest.mark.parametrize("point", ["before-completion", "mid-stream", "after-finish"])
async def test_sigkill_at_three_points_of_one_answer(
    faults: Faults, capsys: pytest.CaptureFixture[str], point: str
) -> None:
    fake = faults.fake
    question = f"kill {point} [[words=60]] [[delay=0.1]]"
    env: dict[str, str] = {}
    if point == "before-completion":
        # With guests and external users allowed nothing is looked up before the ack:
        # the asker's name is looked up inside the turn, before Open WebUI is asked.
        env = {"BRIDGE_ALLOW_GUESTS": "true", "BRIDGE_ALLOW_EXTERNAL": "true"}
        fake.hold("users.info")
    elif point == "after-finish":
        # Open WebUI has the whole answer; the thread's final call never lands.
        fake.hold("chat.stopStream")
    bridge = await faults.start(**env)
    thread = await faults.say(ALICE, question)
    if point == "mid-stream":
        await fake.wait_for_calls("chat.appendStream", timeout=30)
    else:
        await fake.wait_for(lambda: fake.held, timeout=30, what="the held call")
    before = [m.ts for m in faults.replies(thread)]
    await faults.kill(bridge)
    fake.release_all()
    await faults.start(**env)

    verdict = await faults.wait_answered(thread, [asked(ALICE, question)], timeout=30)
    faults.report(capsys, f"sigkill-{point}", verdict)
    assert_clean(verdict, faults, thread)
    answer = verdict.answer_messages[0]
    assert answer is not None
    if before:
        assert answer.ts == before[0], "the answer was not edited in place"
    await _assert_chain(faults, thread, [asked(ALICE, question)])


async def test_sigkill_before_the_final_update_without_streaming(
    faults: Faults, capsys: pytest.CaptureFixture[str]
) -> None:
    question = "kill final-update [[words=60]] [[delay=0.1]]"
    fake = faults.fake
    # The final edit is the one carrying the last word.
    fake.hold("chat.update", when=lambda params: "w60" in json.dumps(params))
    bridge = await faults.start(SLACK_NATIVE_STREAMING="false")
    thread = await faults.say(ALICE, question)
    await fake.wait_for(lambda: fake.held, timeout=30, what="the final chat.update")
    before = [m.ts for m in faults.replies(thread)]
    await faults.kill(bridge)
    fake.release_all()
    await faults.start(SLACK_NATIVE_STREAMING="false")

    verdict = await faults.wait_answered(thread, [asked(ALICE, question)], timeout=30)
    faults.report(capsys, "sigkill-final-update", verdict)
    assert_clean(verdict, faults, thread)
    answer = verdict.answer_messages[0]
    assert answer is not None and before and answer.ts == before[0]
    assert fake.message(CHANNEL, before[0]) is answer
