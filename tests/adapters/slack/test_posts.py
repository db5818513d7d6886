"""Slack posts whose answer was lost (the connection dropped, a timeout, a 5xx after
Slack made the message): the thread ends with exactly one copy of the answer."""

from __future__ import annotations

from dataclasses import replace

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.client import retry_handlers
from adapters.slack.posts import EVENT_TYPE, UNCERTAIN, UNCERTAIN_STREAM, metadata, read
from bridge.split import join_split
from tests.adapters.slack.slack_fixtures import TOKEN, ask, output
from tests.fakes.slack_server import BOT_USER_ID, FakeSlack

LONG = "First paragraph here.\n\n" + "Second paragraph, long enough for its own message."


def kinds(fake: FakeSlack, thread: str) -> list[tuple[str, int] | None]:
    """(turn, part) of each bot message in the thread, from its metadata."""
    found: list[tuple[str, int] | None] = []
    for message in fake.bot_replies("C1", thread):
        meta = message.metadata or {}
        payload = meta.get("event_payload") or {}
        found.append((payload["turn"], payload["part"]) if meta else None)
    return found


@pytest.mark.parametrize("how", ["drop", "status"])
async def test_a_lost_post_of_part_one_leaves_one_copy(fake: FakeSlack, how: str) -> None:
    asked = ask(fake, output(fake, streaming=False, limit=60))
    fake.lose_response("chat.postMessage", how)
    await asked.reply().finish(LONG)
    assert join_split(asked.shown) == LONG and len(asked.shown) == 2
    assert len(fake.lost) == 1
    assert fake.count("conversations.replies") == 1  # looked for before posting again
    assert kinds(fake, asked.thread) == [(asked.thread, 0), (asked.thread, 1)]
    assert asked.saved[-1] == [m.ts for m in fake.bot_replies("C1", asked.thread)]


async def test_a_lost_second_part_is_found_not_posted_again(fake: FakeSlack) -> None:
    asked = ask(fake, output(fake, streaming=False, limit=60))
    reply = asked.reply()
    assert await reply.update("First paragraph here.")
    fake.lose_response("chat.postMessage")
    assert not await reply.update(LONG)  # part two's answer is lost: not shown as sent
    assert asked.saved[-1][-1] == UNCERTAIN  # remembered, also for a restart
    await reply.finish(LONG + " The end.")
    assert join_split(asked.shown) == LONG + " The end."
    assert fake.count("chat.postMessage") == 2  # part two was adopted, then edited
    assert kinds(fake, asked.thread) == [(asked.thread, 0), (asked.thread, 1)]


async def test_a_lost_part_slack_did_not_make_is_posted(fake: FakeSlack) -> None:
    asked = ask(fake, output(fake, streaming=False))
    reply = asked.reply()
    # The connection dropped before Slack made the message: nothing to find.
    fake.fail_next("chat.postMessage", "internal_error", status=503)
    await reply.finish("Whole answer.")
    assert asked.shown == ["Whole answer."]
    assert fake.count("conversations.replies") == 1 and fake.count("chat.postMessage") == 2


async def test_a_post_that_stalls_past_the_timeout_leaves_one_copy(fake: FakeSlack) -> None:
    client = AsyncWebClient(
        token=TOKEN, base_url=fake.api_url, retry_handlers=retry_handlers(), timeout=1
    )
    out = output(fake, streaming=False)
    asked = ask(fake, replace(out, client=client))
    fake.lose_response("chat.postMessage", "stall", seconds=2)
    await asked.reply().finish("Slow Slack.")
    assert asked.shown == ["Slow Slack."]
    assert fake.count("chat.postMessage") == 1


async def test_a_lost_stream_start_is_found_and_finished(fake: FakeSlack) -> None:
    asked = ask(fake, output(fake))
    reply = asked.reply()
    fake.lose_response("chat.startStream")
    assert not await reply.update("Hello")
    assert asked.saved[-1] == [UNCERTAIN_STREAM]
    assert await reply.update("Hello there")
    await reply.finish("Hello there, done.")
    (message,) = fake.bot_replies("C1", asked.thread)
    assert message.text == "Hello there, done." and message.stream_state == "stopped"
    assert fake.count("chat.startStream") == 1 and fake.count("chat.postMessage") == 0
    assert kinds(fake, asked.thread) == [(asked.thread, 0)]  # the edit gave it metadata


async def test_a_restart_while_a_part_is_uncertain_ends_with_one_copy(fake: FakeSlack) -> None:
    out = output(fake, streaming=False, limit=60)
    asked = ask(fake, out)
    dead = asked.reply()
    assert await dead.update("First paragraph here.")
    fake.lose_response("chat.postMessage")
    assert not await dead.update(LONG)  # …and the process dies here
    stored = asked.saved[-1]
    assert stored[-1] == UNCERTAIN

    recovered = asked.reply(stored)
    await recovered.finish(LONG)
    assert join_split(asked.shown) == LONG and len(asked.shown) == 2
    assert fake.count("chat.postMessage") == 2
    assert asked.saved[-1] == [m.ts for m in fake.bot_replies("C1", asked.thread)]


async def test_a_failure_after_a_lost_post_edits_the_found_message(fake: FakeSlack) -> None:
    asked = ask(fake, output(fake, streaming=False))
    reply = asked.reply()
    fake.lose_response("chat.postMessage")
    assert not await reply.update("Partial")
    await reply.fail("It broke.")
    assert asked.shown == [":warning: It broke."]
    assert fake.count("chat.postMessage") == 1


async def test_other_answers_in_the_thread_are_left_alone(fake: FakeSlack) -> None:
    out = output(fake, streaming=False)
    asked = ask(fake, out)
    await asked.reply().finish("The first answer.")
    second, _, _ = fake.user_says("C1", "U1", "and?", thread_ts=asked.thread)
    follow_up = type(asked)(fake, out, "C1", asked.thread, question=second)
    fake.lose_response("chat.postMessage")
    await follow_up.reply().finish("The second answer.")
    assert asked.shown == ["The first answer.", "The second answer."]
    assert kinds(fake, asked.thread) == [(asked.thread, 0), (second, 0)]


def test_read_finds_the_turns_parts_after_the_question() -> None:
    mine = metadata("Q", 1)
    messages = [
        {"ts": "1.000001", "user": BOT_USER_ID, "bot_id": "B", "metadata": mine},  # too old
        {"ts": "2.000000", "user": "U1"},  # the question
        {"ts": "2.000002", "user": BOT_USER_ID, "bot_id": "B", "metadata": metadata("P", 0)},
        {"ts": "2.000003", "user": BOT_USER_ID, "bot_id": "B", "metadata": mine},
        {"ts": "2.000004", "user": BOT_USER_ID, "bot_id": "B"},
        {"ts": "2.000005", "user": "U2", "metadata": {"event_type": "other"}},
    ]
    found = read(messages, "Q", BOT_USER_ID, "2.000000")
    assert found.parts == {1: "2.000003"} and found.unmarked == ["2.000004"]
    assert mine["event_type"] == EVENT_TYPE


async def test_creating_calls_are_never_repeated_blindly(fake: FakeSlack) -> None:
    client = AsyncWebClient(token=TOKEN, base_url=fake.api_url, retry_handlers=retry_handlers())
    fake.lose_response("chat.postMessage")
    with pytest.raises(Exception):  # noqa: B017 - the lost answer reaches the caller
        await client.chat_postMessage(channel="C1", text="once")
    assert fake.count("chat.postMessage") == 1
    # An edit is safe to repeat: its retry lands.
    ts = str((await client.chat_postMessage(channel="C1", text="x"))["ts"])
    fake.lose_response("chat.update")
    await client.chat_update(channel="C1", ts=ts, text="edited")
    assert fake.count("chat.update") == 2 and fake.message("C1", ts).text == "edited"  # type: ignore[union-attr]
