"""Which Slack events get an answer, table-style, on recorded payload shapes."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.slack.inbound import decide, parse

BOT = "UBOT"


def body(**event: Any) -> dict[str, Any]:
    base = {"type": "message", "user": "U1", "text": "hi", "ts": "2.0", "channel": "C1"}
    return {"team_id": "T1", "event": base | event}


@pytest.mark.parametrize(
    ("payload", "known", "answer", "context"),
    [
        (body(text=f"<@{BOT}> hi"), False, True, False),  # mention in a channel
        (body(type="app_mention", text=f"<@{BOT}> hi"), False, True, False),
        (body(text="hi"), False, False, False),  # channel chatter
        (body(text="more", thread_ts="1.0"), True, True, False),  # follow-up in its thread
        (body(text="more", thread_ts="1.0"), False, False, False),  # someone else's thread
        (body(text=f"<@{BOT}> sum up", thread_ts="1.0"), False, True, True),  # joins late
        (body(channel="D1", channel_type="im"), False, True, False),  # DM
        (body(channel="D1", channel_type="im", thread_ts="1.0"), False, True, True),
        (body(user=BOT, text=f"<@{BOT}> echo"), False, False, False),  # itself
    ],
)
def test_decide(payload: dict[str, Any], known: bool, answer: bool, context: bool) -> None:
    message = parse(payload)
    assert message is not None
    decision = decide(message, BOT, known_thread=known)
    assert (decision.answer, decision.needs_context) == (answer, context)


@pytest.mark.parametrize(
    "payload",
    [
        body(bot_id="B2", text=f"<@{BOT}> loop"),
        body(subtype="bot_message", text=f"<@{BOT}> loop"),
        body(subtype="message_changed"),
        body(subtype="message_deleted"),
        body(subtype="channel_join"),
        body(text="   "),
        {"event": {"type": "reaction_added"}},
    ],
)
def test_not_a_question(payload: dict[str, Any]) -> None:
    assert parse(payload) is None


def test_one_delivery_id_for_message_and_mention() -> None:
    a = parse(body(text=f"<@{BOT}> x"))
    b = parse(body(type="app_mention", text=f"<@{BOT}> x"))
    assert a is not None and b is not None
    assert a.delivery_id == b.delivery_id == "C1:2.0"
    assert a.thread == "2.0"
