"""Slack text translation, both directions, table-style."""

from __future__ import annotations

import pytest

from adapters.slack.text import (
    decode_inbound,
    markdown_to_mrkdwn,
    mentioned_user_ids,
    neutralise_mentions,
    strip_bot_mention,
)

USERS = {"U1": "Alice", "U2": "Bob", "W3": "Enterprise Eve"}


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        # Users: the mapping wins, then the label Slack sent, then the id.
        ("hi <@U1>", "hi @Alice"),
        ("hi <@U1|alice.old>", "hi @Alice"),
        ("hi <@W3>", "hi @Enterprise Eve"),
        ("hi <@U9|someone>", "hi @someone"),
        ("hi <@U9>", "hi @U9"),
        # Channels.
        ("see <#C1|general>", "see #general"),
        ("see <#C1>", "see #C1"),
        ("see <#C1|>", "see #C1"),
        # Links.
        ("<https://x.y|the docs>", "the docs (https://x.y)"),
        ("<https://x.y/a?b=1&amp;c=2|the docs>", "the docs (https://x.y/a?b=1&c=2)"),
        ("<https://x.y>", "https://x.y"),
        ("<https://x.y|https://x.y>", "https://x.y"),
        ("<http://x.y|x.y>", "x.y"),
        ("<mailto:a@b.c|a@b.c>", "a@b.c"),
        ("<mailto:a@b.c>", "a@b.c"),
        ("<mailto:a@b.c|Alice>", "Alice (a@b.c)"),
        # Broadcasts and groups.
        ("<!here> and <!channel> and <!everyone>", "@here and @channel and @everyone"),
        ("<!here|here>", "@here"),
        ("<!subteam^S1|@oncall>", "@oncall"),
        ("<!subteam^S1>", "@S1"),
        ("<!date^1392734382^{date_short}|Feb 18, 2014>", "Feb 18, 2014"),
        # Entities, &amp; last.
        ("a &lt;b&gt; &amp; c", "a <b> & c"),
        ("&amp;lt; stays", "&lt; stays"),
        ("typed &lt;@U1&gt; literally", "typed <@U1> literally"),
        ("<https://x.y|a &amp; b>", "a & b (https://x.y)"),
        ("no markup at all", "no markup at all"),
    ],
)
def test_decode_inbound(raw: str, decoded: str) -> None:
    assert decode_inbound(raw, USERS) == decoded


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("<@UBOT> ask <@U1> and <@U2|bob> and <@U1>", ["UBOT", "U1", "U2"]),
        ("<@W3> and <#C1|general>", ["W3"]),
        ("&lt;@U1&gt; is typed, not a mention", []),
        ("", []),
    ],
)
def test_mentioned_user_ids(text: str, ids: list[str]) -> None:
    assert mentioned_user_ids(text) == ids


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        ("<@UBOT> ask <@U1>", "ask <@U1>"),
        ("  <@UBOT>\n\nhello", "hello"),
        ("<@UBOT|bot> hello", "hello"),
        ("<@UBOT>", ""),
        # Only the leading mention addresses the bot; others are content.
        ("hey <@UBOT>, help", "hey <@UBOT>, help"),
        ("<@U1> <@UBOT> hi", "<@U1> <@UBOT> hi"),
        ("<@UBOTX> hi", "<@UBOTX> hi"),
        ("no mention", "no mention"),
    ],
)
def test_strip_bot_mention(text: str, stripped: str) -> None:
    assert strip_bot_mention(text, "UBOT") == stripped


@pytest.mark.parametrize(
    ("md", "mrkdwn"),
    [
        # Emphasis.
        ("**bold**", "*bold*"),
        ("__bold__", "*bold*"),
        ("*italic*", "_italic_"),
        ("_italic_", "_italic_"),
        ("***both***", "*_both_*"),
        ("**bold with _italic_ inside**", "*bold with _italic_ inside*"),
        ("~~strike~~", "~strike~"),
        ("snake_case_name and 2 * 3 * 4", "snake_case_name and 2 * 3 * 4"),
        ("a __init__ b", "a *init* b"),
        # Links and URLs.
        ("[label](https://x.y)", "<https://x.y|label>"),
        ("[**bold** label](https://x.y)", "<https://x.y|*bold* label>"),
        ('[t](https://x.y "title")', "<https://x.y|t>"),
        ("[q](https://x.y/?a=1&b=2)", "<https://x.y/?a=1&amp;b=2|q>"),
        (
            "[w](https://en.wikipedia.org/wiki/C_(lang))",
            "<https://en.wikipedia.org/wiki/C_(lang)|w>",
        ),
        ("![diagram](https://x.y/d.png)", "<https://x.y/d.png|diagram>"),
        ("<https://x.y/a>", "<https://x.y/a>"),
        ("see https://x.y/__init__/a_b*c*d", "see https://x.y/__init__/a_b*c*d"),
        ("(https://x.y/a_(b)_c) and more.", "(https://x.y/a_(b)_c) and more."),
        ("at https://x.y/?a=1&b=2.", "at https://x.y/?a=1&amp;b=2."),
        ("**https://x.y/a_b_c**", "*https://x.y/a_b_c*"),
        # Headings.
        ("# Title", "*Title*"),
        ("### Deep title ###", "*Deep title*"),
        ("## **Already bold** title", "*Already bold title*"),
        ("#hashtag", "#hashtag"),
        # Lists, quotes, rules.
        ("* item", "• item"),
        ("- item", "• item"),
        ("+ item", "• item"),
        ("- one\n  - nested *it*", "• one\n  • nested _it_"),
        ("1. **first**", "1. *first*"),
        ("> quoted **b** & c", "> quoted *b* &amp; c"),
        ("---", "---"),
        ("***", "***"),
        # Escaping of the three control characters, everywhere.
        ("a < b && c > d", "a &lt; b &amp;&amp; c &gt; d"),
        ("<!channel> ping", "&lt;!channel&gt; ping"),
        ("`a < b && **c**`", "`a &lt; b &amp;&amp; **c**`"),
        ("``x`y``", "``x`y``"),
        (r"\*literal\*", "*literal*"),
        # Code blocks: language dropped, content untouched except escaping.
        (
            '```python\nif a < b:\n    print("**x**", y_z_w)\n```',
            '```\nif a &lt; b:\n    print("**x**", y_z_w)\n```',
        ),
        (
            "~~~sh\n# not a heading\n- not a bullet\n~~~",
            "```\n# not a heading\n- not a bullet\n```",
        ),
        ("````md\n```\ninner\n```\n````", "```\n```\ninner\n```\n```"),
        ("```\nunclosed *x*", "```\nunclosed *x*\n```"),
        ("```inline``` **b**", "```inline``` *b*"),
        ("before\n\n```js\nx\n```\n\n**after**", "before\n\n```\nx\n```\n\n*after*"),
    ],
)
def test_markdown_to_mrkdwn(md: str, mrkdwn: str) -> None:
    assert markdown_to_mrkdwn(md) == mrkdwn


Z = "\u200b"


@pytest.mark.parametrize(
    ("answer", "sent"),
    [
        # Every form Slack would act on gets a zero-width space after "<": still readable.
        ("ping <!channel> now", f"ping <{Z}!channel> now"),
        ("<!here> and <!everyone>", f"<{Z}!here> and <{Z}!everyone>"),
        ("<!here|here>", f"<{Z}!here|here>"),
        ("team <!subteam^S123|@oncall>", f"team <{Z}!subteam^S123|@oncall>"),
        ("ask <@U123> or <@W456|eve>", f"ask <{Z}@U123> or <{Z}@W456|eve>"),
        # Typed broadcasts too; an e-mail address or a longer word is no broadcast.
        ("hey @channel and @Here", f"hey @{Z}channel and @{Z}Here"),
        ("mail ops@here.com", "mail ops@here.com"),
        ("@channels is a word", "@channels is a word"),
        ("`<!channel>` in code", f"`<{Z}!channel>` in code"),
        # Everything else is left as the model wrote it.
        ("a < b and <https://x.y>", "a < b and <https://x.y>"),
        ("see <#C1|general>", "see <#C1|general>"),
        # Already neutral text stays as it is.
        (f"<{Z}!channel> @{Z}here", f"<{Z}!channel> @{Z}here"),
    ],
)
def test_neutralise_mentions(answer: str, sent: str) -> None:
    assert neutralise_mentions(answer) == sent


MARKUP = "a <!channel> b <@U1> c <!subteam^S1>"


@pytest.mark.parametrize("cut", range(len(MARKUP) + 1))
def test_neutralised_prefix_stays_a_prefix_for_markup(cut: int) -> None:
    # Streaming appends only what is new: a prefix must neutralise to a prefix.
    assert neutralise_mentions(MARKUP).startswith(neutralise_mentions(MARKUP[:cut]))


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        # A Markdown link whose target is Slack markup must not become that markup.
        ("[all](!channel)", "all (!channel)"),
        ("[you](@U123)", "you (@U123)"),
        ("[docs](/relative/path)", "docs (/relative/path)"),
        ("[docs](https://x.y)", "<https://x.y|docs>"),
        # Literal markup is escaped, as before.
        ("<!channel>", "&lt;!channel&gt;"),
    ],
)
def test_mrkdwn_links_cannot_ping(markdown: str, mrkdwn: str) -> None:
    assert markdown_to_mrkdwn(markdown) == mrkdwn
