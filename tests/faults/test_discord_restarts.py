"""The faults suite's restart scenarios on Discord: ``owui-bridge run`` is killed
while it answers, then started again on the same database; every question still
ends in exactly one complete answer, in its one message, edited in place."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.discord_server import FakeDiscord
from tests.faults.discord_process import DiscordFaults, asked
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI

EDIT = "PATCH /channels/{channel_id}/messages/{message_id}"
OPEN_THREAD = "POST /channels/{channel_id}/messages/{message_id}/threads"


@pytest.fixture
async def faults(openwebui: RunningOpenWebUI, tmp_path: Path) -> AsyncIterator[DiscordFaults]:
    async with FakeDiscord() as fake:
        world = DiscordFaults(openwebui, fake, tmp_path)
        try:
            yield world
        finally:
            # Release anything still held, so a stopping process is not stuck on it.
            fake.release_all()
            await world.stop_all()


def posts_in(faults: DiscordFaults, thread: str) -> int:
    return len(faults.fake.calls_of("POST", f"/channels/{thread}/messages"))


async def test_two_questions_in_one_thread_survive_a_sigkill(
    faults: DiscordFaults, capsys: pytest.CaptureFixture[str]
) -> None:
    q1, q2 = "q1 sigkill [[words=80]] [[delay=0.1]]", "q2 sigkill [[words=20]]"
    questions = [asked(q1), asked(q2)]
    bridge = await faults.start()
    thread = faults.mention(q1)
    first = await faults.wait_partial(thread, questions[0])
    second = faults.say_in(thread, q2)  # while A1 streams
    await faults.wait_stored(second)  # Q2 is queued on disk behind A1
    await faults.kill(bridge)
    cut = faults.fake.message(first)
    assert cut is not None and cut.content != expected_reply(questions[0]), "A1 was not cut"
    await faults.start()

    verdict = await faults.wait_answered(thread, questions)
    faults.report(capsys, "two-questions-sigkill", verdict)
    faults.assert_clean(verdict, thread)
    assert verdict.in_order
    a1, a2 = verdict.answer_messages
    assert a1 is not None and a1.ts == first, "A1 was not finished in place"
    assert a2 is not None
    assert [m.id for m in faults.fake.bot_messages(thread)] == [a1.ts, a2.ts]
    await faults.assert_chain(thread, questions)


async def test_sigkill_mid_answer_completes_the_message_in_place(
    faults: DiscordFaults, capsys: pytest.CaptureFixture[str]
) -> None:
    q = "kill mid-answer [[words=60]] [[delay=0.1]]"
    bridge = await faults.start()
    thread = faults.mention(q)
    first = await faults.wait_partial(thread, asked(q))
    await faults.kill(bridge)
    cut = faults.fake.message(first)
    assert cut is not None and cut.content != expected_reply(asked(q)), "the answer was not cut"
    await faults.start()

    verdict = await faults.wait_answered(thread, [asked(q)])
    faults.report(capsys, "sigkill-mid-answer", verdict)
    faults.assert_clean(verdict, thread)
    # One message, the first attempt's: if the restart posted again (its id may not
    # have been saved before the kill), the post's nonce brought back that same message.
    [message] = faults.fake.bot_messages(thread)
    assert message.id == first and message.content == expected_reply(asked(q))
    await faults.assert_chain(thread, [asked(q)])


async def test_sigkill_before_the_final_edit_lands(
    faults: DiscordFaults, capsys: pytest.CaptureFixture[str]
) -> None:
    q = "kill final-edit [[words=60]] [[delay=0.05]]"
    fake = faults.fake
    # The edit carrying the last word waits; the killed process never sees it land.
    fake.hold(EDIT, when=lambda call: "w60" in json.dumps(call.body))
    bridge = await faults.start()
    thread = faults.mention(q)
    await fake.wait_for(lambda: fake.held, timeout=30, what="the final edit")
    [before] = fake.bot_messages(thread)
    assert before.content != expected_reply(asked(q))  # the person sees it unfinished
    await faults.kill(bridge)
    fake.release_all()
    posted = posts_in(faults, thread)
    await faults.start()

    verdict = await faults.wait_answered(thread, [asked(q)])
    faults.report(capsys, "sigkill-final-edit", verdict)
    faults.assert_clean(verdict, thread)
    [message] = fake.bot_messages(thread)
    assert message.id == before.id and message.content == expected_reply(asked(q))
    assert posts_in(faults, thread) == posted
    await faults.assert_chain(thread, [asked(q)])


async def test_sigkill_before_the_thread_is_opened(
    faults: DiscordFaults, capsys: pytest.CaptureFixture[str]
) -> None:
    q = "kill before-thread [[words=30]]"
    fake = faults.fake
    fake.hold(OPEN_THREAD)  # the turn's first Discord call, before Open WebUI is asked
    bridge = await faults.start()
    thread = faults.mention(q)
    await fake.wait_for(lambda: fake.held, timeout=30, what="the thread being opened")
    await faults.kill(bridge)
    fake.release_all()
    assert fake.threads() == []  # the killed process's call never landed
    await faults.start()

    verdict = await faults.wait_answered(thread, [asked(q)])
    faults.report(capsys, "sigkill-before-thread", verdict)
    faults.assert_clean(verdict, thread)
    [opened] = fake.threads(faults.general)
    assert opened["id"] == thread
    assert fake.bot_messages(faults.general) == []
    await faults.assert_chain(thread, [asked(q)])


async def test_a_thread_that_could_not_be_opened_is_answered_in_the_channel_across_a_sigkill(
    faults: DiscordFaults, capsys: pytest.CaptureFixture[str]
) -> None:
    q = "kill no-thread [[words=60]] [[delay=0.1]]"
    fake = faults.fake
    fake.cut_next(OPEN_THREAD)  # the network fails once; the restarted process could open it
    bridge = await faults.start()
    thread = faults.mention(q)
    general = faults.general
    first = await faults.wait_partial(general, asked(q))  # the person sees it in the channel
    await faults.kill(bridge)
    cut = fake.message(first)
    assert cut is not None and cut.content != expected_reply(asked(q)), "the answer was not cut"
    await faults.start()

    verdict = await faults.wait_answered(general, [asked(q)])
    faults.report(capsys, "sigkill-no-thread", verdict)
    faults.assert_clean(verdict, general)
    [message] = fake.bot_messages(general)
    assert message.id == first and message.content == expected_reply(asked(q))
    assert message.reference == thread  # a reply to the question
    assert fake.threads(general) == []  # no thread, and none opened after the restart
    await faults.assert_chain(thread, [asked(q)])
