"""Texts that offer a splitter no natural cut, and the platforms' message limits,
written from the platforms' documentation (platforms.md), never imported from the
product: tests judge the product against these numbers."""

from __future__ import annotations

import re

DISCORD_CONTENT = 2_000  # Discord: message content
SLACK_MARKDOWN = 12_000  # Slack: markdown_text (and the markdown block)
SLACK_TEXT = 40_000  # Slack: text (mrkdwn) is refused or truncated beyond this


def shapes(n: int) -> dict[str, str]:
    """Texts of exactly ``n`` characters (``n`` ≥ 20) with no space and no blank line."""
    return {
        "one unbroken line": "x" * n,
        "a URL": ("https://example.com/" + "a" * n)[:n],
        "a code span with no newline": "```" + "y" * (n - 6) + "```",
        "a fenced block of one line": "```python\n" + "z" * (n - 14) + "\n```",
    }


SHAPES = list(shapes(20))
FENCED = "a fenced block of one line"


# A message that re-opens a code block cut at the end of the one before starts so.
_REOPEN = re.compile(r"```[^`\n]*\n")


def rejoined(parts: list[str]) -> str:
    """What messages say together, read as a person would: a code block cut across
    messages is closed at the end of one (``"\n```"``, where a cut elsewhere keeps its
    whitespace) and re-opened at the start of the next."""
    text = ""
    for part in parts:
        reopen = _REOPEN.match(part)
        if text.endswith("\n```") and reopen:
            text = text.removesuffix("\n```") + part[reopen.end() :]
        else:
            text += part
    return text
