"""Which Discord messages get an answer, and in which conversation, table-style."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from adapters.discord.inbound import (
    ChannelKind,
    DiscordMessage,
    channel_kind,
    decide,
    is_question,
    order_of,
    question_message,
    source_channel,
    thread_key,
    thread_to_open,
)
from bridge.events import FileRef, PlatformEvent, ThreadKey

BOT = "900"
PNG_REF = FileRef("77", "shot.png", "image/png", 10, "https://cdn.example/shot.png")
ROLE = "901"  # the bot's own managed role


def msg(**fields: Any) -> DiscordMessage:
    base: dict[str, Any] = {
        "id": "500",
        "channel_id": "100",
        "guild_id": "1",
        "kind": ChannelKind.CHANNEL,
        "author_id": "7",
        "author_name": "Ada",
        "content": f"<@{BOT}> what is a monad?",
        "mentions_bot": True,
        "bot_mention_ids": frozenset({BOT, ROLE}),
    }
    return DiscordMessage(**(base | fields))


CH, THREAD, DM = ChannelKind.CHANNEL, ChannelKind.THREAD, ChannelKind.DM


@pytest.mark.parametrize(
    ("message", "known", "answer", "context"),
    [
        (msg(), False, True, False),  # mention in a channel: a new thread
        (msg(content="chatter", mentions_bot=False), False, False, False),
        (msg(content=f"<@&{ROLE}> hi"), False, True, False),  # the bot's role counts
        (msg(kind=THREAD, content="more", mentions_bot=False), True, True, False),  # follow-up
        (msg(kind=THREAD, content="more", mentions_bot=False), False, False, False),  # not ours
        (msg(kind=THREAD), False, True, True),  # mention in a thread: joins with context
        (msg(kind=THREAD), True, True, False),  # mention in its own thread: just a question
        (msg(kind=DM, guild_id="", content="hi", mentions_bot=False), False, True, False),
        (msg(kind=ChannelKind.UNKNOWN, content="x", mentions_bot=False), True, True, False),
        (msg(kind=ChannelKind.UNKNOWN), False, False, False),  # uncached: never opened
        (msg(kind=ChannelKind.OTHER), False, False, False),  # voice chat, stage
    ],
)
def test_decide(message: DiscordMessage, known: bool, answer: bool, context: bool) -> None:
    decision = decide(message, known_thread=known)
    assert (decision.answer, decision.needs_context) == (answer, context)


CHATTER = msg(content="no mention here", mentions_bot=False)
FOLLOW_UP = msg(kind=THREAD, content="more", mentions_bot=False)


@pytest.mark.parametrize(
    ("message", "known", "respond_to", "answer"),
    [
        (CHATTER, False, "all", True),  # every top-level message opens a thread
        (CHATTER, False, "mentions", False),
        (msg(), False, "all", True),
        (msg(type=19, content="a reply", mentions_bot=False), False, "all", True),
        (msg(content="", mentions_bot=False), False, "all", False),  # a sticker: not a question
        (msg(from_bot=True, mentions_bot=False), False, "all", False),  # bots never
        (msg(kind=THREAD, content="x", mentions_bot=False), False, "all", False),  # not ours
        (FOLLOW_UP, True, "all", True),
        (msg(), False, "off", False),  # not even a mention
        (FOLLOW_UP, True, "off", False),  # nor a conversation already under way
        (msg(kind=THREAD), False, "off", False),
        (msg(kind=DM, guild_id="", content="hi", mentions_bot=False), True, "off", True),
    ],
)
def test_decide_follows_respond_to(
    message: DiscordMessage, known: bool, respond_to: Any, answer: bool
) -> None:
    decision = decide(message, known_thread=known, respond_to=respond_to)
    assert decision.answer is answer
    assert not decision.needs_context or message.kind is THREAD


def test_a_regenerate_opens_nothing_and_names_its_question() -> None:
    original = event_of(msg())
    again = replace(
        original,
        event_id="reaction:1:2:3",
        message_id="500~reaction:1:2:3",
        regenerates=7,
        question_message_id="500",
    )
    assert thread_to_open(again) is None
    assert question_message(again) == "500" and question_message(original) == "500"


@pytest.mark.parametrize(
    "message",
    [
        msg(from_bot=True),  # another bot, or the bridge itself
        msg(kind=DM, from_bot=True),
        msg(webhook_id="55"),
        msg(type=7),  # member joined
        msg(type=18),  # thread created
        msg(type=21),  # thread starter message
        msg(content="   ", mentions_bot=False),
        msg(kind=THREAD, content="", mentions_bot=False),  # a sticker in a known thread
        msg(kind=DM, guild_id="", content="", mentions_bot=False),
    ],
)
def test_not_a_question(message: DiscordMessage) -> None:
    assert not is_question(message)
    assert not decide(message, known_thread=True).answer


@pytest.mark.parametrize(
    "message",
    [
        msg(content=f"<@{BOT}>"),  # a bare mention: the core answers with a hint
        msg(content=f"<@&{ROLE}>  "),
        msg(kind=THREAD, content="", mentions_bot=False, files=(PNG_REF,)),  # files only
        msg(kind=DM, guild_id="", content="", mentions_bot=False, files=(PNG_REF, PNG_REF)),
        msg(content=f"<@{BOT}> read this", files=(PNG_REF,)),
    ],
)
def test_bare_mentions_and_files_reach_the_core(message: DiscordMessage) -> None:
    assert is_question(message)
    assert decide(message, known_thread=True).answer


def test_a_reply_is_a_question() -> None:
    assert is_question(msg(type=19))


@pytest.mark.parametrize(
    ("message", "key"),
    [
        (msg(), ThreadKey("discord", "1", "500", "500")),  # the thread opened from it
        (msg(kind=THREAD, channel_id="300"), ThreadKey("discord", "1", "300", "300")),
        (msg(kind=DM, guild_id="", channel_id="42"), ThreadKey("discord", "", "42", "42")),
        (msg(kind=ChannelKind.OTHER), None),
    ],
)
def test_thread_key(message: DiscordMessage, key: ThreadKey | None) -> None:
    assert thread_key(message) == key


@pytest.mark.parametrize(
    ("content", "question"),
    [
        (f"<@{BOT}> what?", "what?"),
        (f"<@!{BOT}>   what?", "what?"),
        (f"  <@&{ROLE}> what?", "what?"),
        (f"what, <@{BOT}>?", f"what, <@{BOT}>?"),  # only an opening mention goes
        ("<@123> what?", "<@123> what?"),  # someone else
        (f"<#{BOT}> what?", f"<#{BOT}> what?"),  # a channel with the same digits
    ],
)
def test_question_strips_the_opening_mention(content: str, question: str) -> None:
    assert msg(content=content).question == question


def event_of(message: DiscordMessage) -> PlatformEvent:
    key = thread_key(message)
    assert key is not None
    return PlatformEvent(
        event_id=message.delivery_id,
        thread=key,
        message_id=message.id,
        author_id=message.author_id,
        author_name="",
        text=message.question,
        order=order_of(message),
    )


@pytest.mark.parametrize(
    ("message", "opens"),
    [
        (msg(), ("100", "500")),  # channel mention: a thread from channel 100's message 500
        (msg(kind=THREAD, channel_id="300"), None),  # an existing thread
        (msg(kind=THREAD, channel_id="500", id="500"), None),  # a forum post's first message
        (msg(kind=DM, guild_id="", channel_id="42"), None),
    ],
)
def test_thread_to_open(message: DiscordMessage, opens: tuple[str, str] | None) -> None:
    event = event_of(message)
    assert thread_to_open(event) == opens
    # What prepare() needs survives the store: the event's own JSON round trip.
    assert thread_to_open(PlatformEvent.from_json(event.to_json())) == opens
    assert source_channel(event) == message.channel_id


def test_replays_share_the_event_id_and_order_follows_snowflakes() -> None:
    first, again = msg(), msg()
    assert first.delivery_id == again.delivery_id == "100:500"
    earlier, later = order_of(msg(id="999")), order_of(msg(id="1000"))
    assert earlier < later  # as text, like the numbers


def test_source_channel_of_an_event_without_one() -> None:
    event = replace(event_of(msg(kind=THREAD, channel_id="300")), event_id="777")
    assert source_channel(event) == "300"


@pytest.mark.parametrize(
    ("channel_type", "in_guild", "kind"),
    [
        (None, False, DM),
        (None, True, ChannelKind.UNKNOWN),
    ],
)
def test_channel_kind_without_a_cached_channel(
    channel_type: None, in_guild: bool, kind: ChannelKind
) -> None:
    assert channel_kind(channel_type, in_guild) is kind


def test_channel_kinds() -> None:
    import discord

    assert channel_kind(discord.ChannelType.text, True) is CH
    assert channel_kind(discord.ChannelType.news, True) is CH
    assert channel_kind(discord.ChannelType.public_thread, True) is THREAD
    assert channel_kind(discord.ChannelType.private_thread, True) is THREAD
    assert channel_kind(discord.ChannelType.private, False) is DM
    assert channel_kind(discord.ChannelType.voice, True) is ChannelKind.OTHER
