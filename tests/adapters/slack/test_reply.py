"""The Slack reply state machine against a local Slack (real slack_sdk client, no Open WebUI)."""

from __future__ import annotations

import asyncio
import time

import pytest

from adapters.slack.budget import Rates, SlackBudget
from adapters.slack.features import Recipient, Refusals
from adapters.slack.reply import SlackReply
from bridge.delivery import stopped_text
from bridge.errors import ReplyStopped
from bridge.split import join_split
from tests.adapters.slack.slack_fixtures import Asked, ask, methods, output
from tests.fakes.slack_server import FakeSlack


def assert_no_text_lost_or_repeated(versions: list[str], final: str) -> None:
    # Every text a person saw on the way is the start of the final answer.
    assert versions[-1] == final
    for seen in versions:
        assert final.startswith(seen), (seen, final)


# -- streaming -------------------------------------------------------------------------


async def test_streams_and_finishes_in_one_message(fake: FakeSlack) -> None:
    asked = ask(fake, output(fake))
    reply = asked.reply()
    await reply.start()
    assert await reply.update("Hel")
    assert await reply.update("Hello")
    await reply.finish("Hello world")
    (message,) = fake.bot_replies("C1", asked.thread)
    assert (message.text, message.stream_ended_by) == ("Hello world", "app")
    assert methods(fake) == ["chat.startStream", "chat.appendStream", "chat.stopStream"]
    assert asked.saved == [[message.ts]]


async def test_stream_ended_by_slack_is_completed_by_edits(fake: FakeSlack) -> None:
    fake.stream_max_age = 0.2
    asked = ask(fake, output(fake))
    reply = asked.reply()
    assert await reply.update("The answer")
    await asyncio.sleep(0.3)  # Slack ends the stream by itself
    assert await reply.update("The answer grows")
    await reply.finish("The answer grows and ends.")
    (message,) = fake.bot_replies("C1", asked.thread)
    assert message.stream_ended_by == "slack"
    assert_no_text_lost_or_repeated(message.versions, "The answer grows and ends.")
    assert methods(fake)[-2:] == ["chat.update", "chat.update"]


async def test_stream_left_before_slacks_limit(fake: FakeSlack) -> None:
    asked = ask(fake, output(fake, max_stream_age=0.2))
    reply = asked.reply()
    assert await reply.update("Long")
    await asyncio.sleep(0.3)
    assert await reply.update("Long answer")
    await reply.finish("Long answer, done.")
    (message,) = fake.bot_replies("C1", asked.thread)
    assert message.stream_ended_by == "app"
    assert_no_text_lost_or_repeated(message.versions, "Long answer, done.")
    assert methods(fake) == ["chat.startStream", "chat.stopStream", "chat.update", "chat.update"]


async def test_text_that_stops_extending_the_stream_is_edited(fake: FakeSlack) -> None:
    asked = ask(fake, output(fake))
    reply = asked.reply()
    assert await reply.update("Draft one")
    await reply.finish("Final two")
    assert asked.shown == ["Final two"]
    assert fake.count("chat.postMessage") == 0


async def test_answer_longer_than_a_message_continues_in_parts(fake: FakeSlack) -> None:
    asked = ask(fake, output(fake, limit=40))
    reply = asked.reply()
    first = "First paragraph here.\n\n"
    assert await reply.update(first)
    final = first + "Second paragraph, long enough to need its own message."
    await reply.finish(final)
    shown = asked.shown
    assert len(shown) >= 2 and shown[0] == first
    assert join_split(shown) == final
    assert asked.saved[-1] == [m.ts for m in fake.bot_replies("C1", asked.thread)]


# -- stopped by a person ---------------------------------------------------------------


async def test_stopped_by_user_keeps_what_was_shown_marked_stopped(fake: FakeSlack) -> None:
    asked = ask(fake, output(fake))
    reply = asked.reply()
    assert await reply.update("Half an")
    (message,) = fake.bot_replies("C1", asked.thread)
    fake.stop_stream_by_user("C1", message.ts)
    with pytest.raises(ReplyStopped):
        await reply.update("Half an answer")
    calls = len(fake.calls)
    with pytest.raises(ReplyStopped):
        await reply.update("Half an answer, more")
    assert fake.calls[calls:] == []  # stopped: nothing more is streamed
    # The core ends a stopped reply with what it showed, marked (bridge.delivery).
    await reply.finish(stopped_text("Half an"))
    assert [c.method for c in fake.calls[calls:] if c.method.startswith("chat.")] == ["chat.update"]
    assert asked.shown == ["Half an\n\n_(stopped)_"]
    assert message.stream_ended_by == "user"


async def test_stopped_from_the_bridge_closes_the_stream_with_the_mark(fake: FakeSlack) -> None:
    # ⏹ on the answer: the core stops following and ends the reply as shown, marked.
    asked = ask(fake, output(fake))
    reply = asked.reply()
    assert await reply.update("Half an")
    await reply.finish(stopped_text("Half an"))
    (message,) = fake.bot_replies("C1", asked.thread)
    assert (message.text, message.stream_ended_by) == ("Half an\n\n_(stopped)_", "app")
    assert methods(fake) == ["chat.startStream", "chat.stopStream"]


# -- after a restart ---------------------------------------------------------------------


async def test_recovered_reply_edits_the_open_stream_in_place(fake: FakeSlack) -> None:
    asked = ask(fake, output(fake))
    dead = asked.reply()
    assert await dead.update("Half of the")  # the process dies with its stream open
    (message,) = fake.bot_replies("C1", asked.thread)
    assert message.streaming

    recovered = asked.reply([message.ts])
    await recovered.finish("Half of the answer, whole now.")
    assert asked.shown == ["Half of the answer, whole now."]
    assert fake.count("chat.postMessage") == 0 and fake.count("chat.startStream") == 1


async def test_recovered_reply_uses_stored_parts_and_deletes_surplus(fake: FakeSlack) -> None:
    out = output(fake)
    asked = ask(fake, out)
    parts = [
        (await out.client.chat_postMessage(channel="C1", thread_ts=asked.thread, text=t))["ts"]
        for t in ("old part one", "old part two")
    ]
    recovered = asked.reply(parts)
    await recovered.finish("Short now.")
    assert asked.shown == ["Short now."]
    assert asked.saved[-1] == [parts[0]]
    assert fake.count("chat.postMessage") == 2  # only the two made above


async def test_recovered_reply_posts_further_parts_only_when_needed(fake: FakeSlack) -> None:
    out = output(fake, limit=30)
    asked = ask(fake, out)
    first = (await out.client.chat_postMessage(channel="C1", thread_ts=asked.thread, text="x"))[
        "ts"
    ]
    recovered = asked.reply([first])
    assert await recovered.update("Short start.")
    assert fake.count("chat.postMessage") == 1
    await recovered.finish("Short start.\n\nThen a second paragraph.")
    final = "Short start.\n\nThen a second paragraph."
    assert len(asked.shown) == 2 and join_split(asked.shown) == final
    assert asked.saved[-1][0] == first and len(asked.saved[-1]) == 2


# -- a regenerated answer ----------------------------------------------------------------


async def posted(asked: Asked, *texts: str) -> list[str]:
    """An earlier, finished answer in ``texts`` parts (as the bridge left it)."""
    return [
        str(
            (
                await asked.out.client.chat_postMessage(
                    channel=asked.channel, thread_ts=asked.thread, markdown_text=t
                )
            )["ts"]
        )
        for t in texts
    ]


async def test_regenerated_answer_is_edited_into_the_old_one(fake: FakeSlack) -> None:
    asked = ask(fake, output(fake))
    old = await posted(asked, "The old answer.")
    calls = len(fake.calls)
    reply = asked.reply(old, may_be_streaming=False)
    await reply.start()
    assert await reply.update("A new")
    await reply.finish("A new answer.")
    assert asked.shown == ["A new answer."]
    assert [m.ts for m in fake.bot_replies("C1", asked.thread)] == old
    # Edits only: no post, no stream (the old answer holds none to stop).
    assert methods(fake)[-2:] == ["chat.update", "chat.update"]
    assert [c for c in fake.calls[calls:] if c.method.startswith("chat.")] == [
        c for c in fake.calls[calls:] if c.method == "chat.update"
    ]


async def test_shorter_regenerated_answer_deletes_the_surplus_parts(fake: FakeSlack) -> None:
    asked = ask(fake, output(fake, limit=40))
    old = await posted(asked, "Old part one, quite long.", "Old part two.", "Old part three.")
    reply = asked.reply(old, may_be_streaming=False)
    await reply.finish("Short.")
    assert asked.shown == ["Short."]
    assert [m.ts for m in fake.bot_replies("C1", asked.thread)] == old[:1]
    assert asked.saved[-1] == old[:1]
    assert fake.count("chat.delete") == 2


async def test_longer_regenerated_answer_continues_in_new_parts(fake: FakeSlack) -> None:
    asked = ask(fake, output(fake, limit=40))
    old = await posted(asked, "Old.")
    reply = asked.reply(old, may_be_streaming=False)
    final = "First paragraph here, new.\n\nSecond paragraph, long enough for its own."
    await reply.finish(final)
    shown = fake.bot_replies("C1", asked.thread)
    assert shown[0].ts == old[0] and len(shown) >= 2
    assert join_split([m.text for m in shown]) == final
    assert asked.saved[-1] == [m.ts for m in shown]
    assert fake.count("chat.startStream") == 0


async def test_a_regenerate_failing_before_its_first_words_leaves_the_old_answer(
    fake: FakeSlack,
) -> None:
    asked = ask(fake, output(fake, limit=40))
    old = await posted(asked, "Old part one, quite long.", "Old part two.")
    reply = asked.reply(old, may_be_streaming=False)
    await reply.start()
    await reply.fail("The model could not answer.")
    shown = fake.bot_replies("C1", asked.thread)
    # Every part of the old answer as it was, the failure a line of its own below.
    assert [m.text for m in shown] == [
        "Old part one, quite long.",
        "Old part two.",
        ":warning: The model could not answer.",
    ]
    assert [m.ts for m in shown[:2]] == old
    assert asked.saved[-1] == [shown[2].ts]  # the old answer's messages stay the old one's


# -- failures ---------------------------------------------------------------------------


async def test_fail_without_a_message_posts_one_warning(fake: FakeSlack) -> None:
    asked = ask(fake, output(fake))
    await asked.reply().fail("It broke.")
    assert asked.shown == [":warning: It broke."]


async def test_fail_edits_the_streamed_message(fake: FakeSlack) -> None:
    asked = ask(fake, output(fake))
    reply = asked.reply()
    assert await reply.update("Partial")
    await reply.fail("It broke.")
    assert asked.shown == ["Partial\n\n:warning: It broke."]
    assert fake.count("chat.postMessage") == 0


async def test_fail_edits_a_stream_slack_already_ended(fake: FakeSlack) -> None:
    fake.stream_max_age = 0.1
    asked = ask(fake, output(fake))
    reply = asked.reply()
    assert await reply.update("Partial")
    await asyncio.sleep(0.2)
    await reply.fail("It broke.")
    assert asked.shown == ["Partial\n\n:warning: It broke."]


async def test_fail_shows_its_warning_even_when_ending_the_stream_fails(fake: FakeSlack) -> None:
    asked = ask(fake, output(fake))
    reply = asked.reply()
    assert await reply.update("Partial")
    fake.fail_next("chat.stopStream", "internal_error")
    await reply.fail("It broke.")
    warnings = [t for t in asked.shown if ":warning: It broke." in t]
    assert len(warnings) == 1


async def test_fail_after_restart_rewrites_the_stored_messages(fake: FakeSlack) -> None:
    out = output(fake)
    asked = ask(fake, out)
    parts = [
        (await out.client.chat_postMessage(channel="C1", thread_ts=asked.thread, text=t))["ts"]
        for t in ("old one", "old two")
    ]
    await asked.reply(parts).fail("The answer is gone.")
    assert asked.shown == [":warning: The answer is gone."]
    assert asked.saved[-1] == [parts[0]]


# -- refusals per channel and recipient ---------------------------------------------------


async def answer(reply: SlackReply, text: str) -> None:
    """As the core shows an answer: some text while it streams, then the whole of it."""
    await reply.update(text[: len(text) // 2])
    await reply.finish(text)


async def test_streaming_refused_in_one_channel_only(fake: FakeSlack) -> None:
    out = output(fake)
    elsewhere = ask(fake, out, "C2")
    fake.fail_next("chat.startStream", "method_not_supported_for_channel_type")
    await answer(elsewhere.reply(), "posted")
    await answer(ask(fake, out, "C2").reply(), "posted again")
    assert fake.count("chat.startStream") == 1  # C2 is not asked twice
    here = ask(fake, out, "C1")
    await answer(here.reply(), "streamed")
    assert fake.count("chat.startStream") == 2
    assert fake.bot_replies("C1", here.thread)[0].streamed
    assert not fake.bot_replies("C2", elsewhere.thread)[0].streamed


async def test_a_hiccup_switches_nothing_off(fake: FakeSlack) -> None:
    out = output(fake)
    asked = ask(fake, out)
    reply = asked.reply()
    fake.fail_next("chat.startStream", "internal_error")
    assert not await reply.update("Hello")
    assert await reply.update("Hello there")
    await reply.finish("Hello there!")
    again = ask(fake, out)
    await answer(again.reply(), "Streamed too")
    assert all(m.streamed for m in fake.bot_replies("C1", asked.thread))
    assert fake.bot_replies("C1", again.thread)[0].streamed


async def test_one_recipient_kind_does_not_change_anothers(fake: FakeSlack) -> None:
    out = output(fake)
    fake.fail_next("chat.startStream", "invalid_arguments")
    guest = ask(fake, out)
    await answer(guest.reply(user="U9", team="T9", recipient=Recipient.EXTERNAL), "for a guest")
    member = ask(fake, out)
    await answer(member.reply(), "for a member")
    assert not fake.bot_replies("C1", guest.thread)[0].streamed
    assert fake.bot_replies("C1", member.thread)[0].streamed


async def test_markdown_refused_in_one_channel_only(fake: FakeSlack) -> None:
    out = output(fake, streaming=False)
    fake.fail_next("chat.postMessage", "no_text")
    await ask(fake, out, "C2").reply().finish("**bold**")
    await ask(fake, out, "C2").reply().finish("**again**")
    await ask(fake, out, "C1").reply().finish("**here**")
    posts = [c.params for c in fake.calls_of("chat.postMessage")]
    assert [("markdown_text" in p, p.get("text")) for p in posts] == [
        (True, None),  # refused
        (False, "*bold*"),
        (False, "*again*"),  # remembered: straight to mrkdwn
        (True, None),  # another channel keeps Markdown
    ]


def test_refusals_expire() -> None:
    now = [0.0]
    refusals = Refusals(ttl=60, clock=lambda: now[0])
    refusals.refuse_streaming("T1", "C1", Recipient.TEAM)
    refusals.refuse_markdown("T1", "C1")
    assert refusals.streaming_refused("T1", "C1", Recipient.TEAM)
    assert not refusals.streaming_refused("T1", "C1", Recipient.EXTERNAL)
    assert not refusals.streaming_refused("T1", "C2", Recipient.TEAM)
    assert refusals.markdown_refused("T1", "C1") and not refusals.markdown_refused("T1", "C2")
    now[0] = 61
    assert not refusals.streaming_refused("T1", "C1", Recipient.TEAM)
    assert not refusals.markdown_refused("T1", "C1")


# -- budget ------------------------------------------------------------------------------


def tiers(**per_window: float) -> dict[str, float]:
    base = {
        "chat.startStream": 20.0,
        "chat.stopStream": 20.0,
        "chat.update": 50.0,
        "chat.delete": 50.0,
        "assistant.threads.setStatus": 50.0,
        "chat.appendStream": 100.0,
    }
    base.update({k.replace("_", "."): v for k, v in per_window.items()})
    return base


async def test_update_skips_without_budget_and_the_final_lands(fake: FakeSlack) -> None:
    budget = SlackBudget(Rates(per_workspace=tiers(chat_appendStream=1)))
    asked = ask(fake, output(fake, budget=budget))
    reply = asked.reply()
    assert await reply.update("a")
    assert await reply.update("ab")
    started = time.monotonic()
    assert not await reply.update("abc")
    assert time.monotonic() - started < 0.5
    await reply.finish("abcd")
    assert asked.shown == ["abcd"]
    assert fake.count("chat.appendStream") == 1


async def test_final_waits_for_budget(fake: FakeSlack) -> None:
    budget = SlackBudget(Rates(per_workspace=tiers(chat_stopStream=1), window=1.0))
    out = output(fake, budget=budget)
    first, second = ask(fake, out), ask(fake, out)
    one, two = first.reply(), second.reply()
    assert await one.update("one") and await two.update("two")
    started = time.monotonic()
    await asyncio.gather(one.finish("one!"), two.finish("two!"))
    assert time.monotonic() - started >= 0.8  # the second stop waited for the budget
    assert (first.shown, second.shown) == (["one!"], ["two!"])
    assert fake.rate_limited == []


async def test_rate_limited_update_is_skipped_at_once(fake: FakeSlack) -> None:
    asked = ask(fake, output(fake))
    reply = asked.reply()
    assert await reply.update("a")
    fake.rate_limit_next("chat.appendStream", retry_after=2)
    started = time.monotonic()
    assert not await reply.update("ab")
    assert not await reply.update("abc")  # paused: not even tried
    assert time.monotonic() - started < 0.5
    assert fake.count("chat.appendStream") == 1
    await reply.finish("abcd")
    assert asked.shown == ["abcd"]


async def test_final_lands_through_a_storm(fake: FakeSlack) -> None:
    asked = ask(fake, output(fake))
    reply = asked.reply()
    assert await reply.update("Before the storm")
    fake.storm(1.5)
    assert not await reply.update("Before the storm, during")
    await reply.finish("Before the storm, during, after.")
    assert asked.shown == ["Before the storm, during, after."]


async def test_tiers_are_kept_with_eight_answers(fake: FakeSlack) -> None:
    fake.enforce_tiers = True
    fake.tier_window = 2.0
    budget = SlackBudget(Rates(window=2.0, posts_per_channel=30.0))
    out = output(fake, budget=budget)
    threads = [ask(fake, out, f"C{i}") for i in range(8)]
    replies = [t.reply() for t in threads]

    async def answer(index: int) -> None:
        text = ""
        for word in range(30):
            text += f"w{word} "
            await replies[index].update(text)
            await asyncio.sleep(0.01)
        await replies[index].finish(text + "end")

    await asyncio.gather(*(answer(i) for i in range(8)))
    assert fake.rate_limited == []
    for thread in threads:
        assert thread.shown[-1].endswith("w29 end")


# -- mentions ----------------------------------------------------------------------------

PINGING = "Hey <!channel> and <!here>, ask <@U1> or <@W2|eve> or <!subteam^S1|@oncall> <!everyone>"


async def test_streamed_answer_pings_nobody(fake: FakeSlack) -> None:
    asked = ask(fake, output(fake))
    reply = asked.reply()
    # A mention split across updates is caught too.
    for cut in (10, 11, 15, 40, len(PINGING)):
        await reply.update(PINGING[:cut])
    await reply.finish(PINGING + " done")
    assert fake.pings("C1") == []
    assert "channel" in asked.shown[0] and "oncall" in asked.shown[0]


@pytest.mark.parametrize("streaming", [True, False])
async def test_mrkdwn_answer_pings_nobody(fake: FakeSlack, streaming: bool) -> None:
    fake.markdown_text_enabled = False
    asked = ask(fake, output(fake, streaming=streaming))
    await asked.reply().finish(PINGING + " [x](!channel) [y](@U1)")
    assert fake.pings("C1") == []
