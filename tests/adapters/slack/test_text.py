"""Slack inbound markup decoding."""

from __future__ import annotations

import pytest

from adapters.slack.text import decode_inbound, mentioned_user_ids, strip_bot_mention

USERS = {"U1": "Alice", "U2": "Bob"}


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("hi <@U1>", "hi @Alice"),
        ("hi <@U9|someone>", "hi @someone"),
        ("hi <@U9>", "hi @U9"),
        ("see <#C1|general>", "see #general"),
        ("see <#C1>", "see #C1"),
        ("<https://x.y/a?b=1&amp;c=2|the docs>", "the docs (https://x.y/a?b=1&c=2)"),
        ("<https://x.y>", "https://x.y"),
        ("<mailto:a@b.c|a@b.c>", "a@b.c"),
        ("<!here> and <!channel>", "@here and @channel"),
        ("<!subteam^S1|@oncall>", "@oncall"),
        ("a &lt;b&gt; &amp; c", "a <b> & c"),
        ("&amp;lt; stays", "&lt; stays"),
    ],
)
def test_decode_inbound(raw: str, decoded: str) -> None:
    assert decode_inbound(raw, USERS) == decoded


def test_mentions_and_stripping() -> None:
    text = "<@UBOT> ask <@U1> and <@U2|bob> and <@U1>"
    assert mentioned_user_ids(text) == ["UBOT", "U1", "U2"]
    assert strip_bot_mention(text, "UBOT") == "ask <@U1> and <@U2|bob> and <@U1>"
    assert strip_bot_mention("hey <@UBOT>, help", "UBOT") == "hey , help"
