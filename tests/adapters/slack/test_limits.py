"""No Slack message over Slack's limits, whatever the answer: texts with no natural
cut at exactly the limit and one over it, streamed or posted, in Markdown or in the
mrkdwn fallback, through the real slack_sdk client and the local Slack (which
refuses an over-long message with ``msg_too_long``, as Slack does)."""

from __future__ import annotations

import pytest

from tests.adapters.slack.slack_fixtures import ask, output
from tests.fakes.slack_server import FakeSlack
from tests.limit_shapes import FENCED, SHAPES, SLACK_MARKDOWN, SLACK_TEXT, rejoined, shapes

MESSAGE_CALLS = ("chat.postMessage", "chat.update", "chat.startStream", "chat.appendStream")


def longest_sent(fake: FakeSlack) -> tuple[int, int]:
    """The longest ``markdown_text`` and ``text`` any call carried."""
    calls = [c for c in fake.calls if c.method in MESSAGE_CALLS or c.method == "chat.stopStream"]
    markdown = [len(str(c.params.get("markdown_text") or "")) for c in calls]
    text = [len(str(c.params.get("text") or "")) for c in calls]
    return max(markdown, default=0), max(text, default=0)


@pytest.mark.parametrize("markdown", [True, False], ids=["markdown_text", "mrkdwn"])
@pytest.mark.parametrize("streaming", [True, False], ids=["streamed", "posted"])
@pytest.mark.parametrize("over", [0, 1], ids=["at the limit", "one over"])
@pytest.mark.parametrize("shape", SHAPES)
async def test_no_message_over_the_limit(
    fake: FakeSlack, shape: str, over: int, streaming: bool, markdown: bool
) -> None:
    fake.markdown_text_enabled = markdown
    text = shapes(SLACK_MARKDOWN + over)[shape]
    asked = ask(fake, output(fake, streaming=streaming))
    reply = asked.reply()
    await reply.start()
    assert await reply.update(text[:5_000])  # a first part, as a stream would show it
    await reply.finish(text)

    shown = asked.shown
    assert len(shown) == 1 + over
    assert longest_sent(fake)[0] <= SLACK_MARKDOWN
    assert longest_sent(fake)[1] <= SLACK_TEXT
    if markdown:
        assert all(len(m) <= SLACK_MARKDOWN for m in shown), [len(m) for m in shown]
        assert rejoined(shown) == text
    elif shape != FENCED:  # mrkdwn shows a fence as a bare ```: nothing to escape here
        assert "".join(shown) == text


async def test_five_thousand_characters_without_a_break_is_one_message(fake: FakeSlack) -> None:
    for shape in SHAPES:
        text = shapes(5_000)[shape]
        asked = ask(fake, output(fake), text=shape)
        await asked.reply().finish(text)
        assert asked.shown == [text]


async def test_an_answer_full_of_escapes_fits_in_mrkdwn_too(fake: FakeSlack) -> None:
    fake.markdown_text_enabled = False
    text = "<&> " * 3_000  # 12,000 characters; 42,000 once escaped for mrkdwn
    asked = ask(fake, output(fake, streaming=False))
    await asked.reply().finish(text)
    assert longest_sent(fake)[1] <= SLACK_TEXT
    assert (
        "".join(asked.shown).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">") == text
    )
