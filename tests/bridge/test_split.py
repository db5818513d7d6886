"""Splitting long answers: limits, word and fence boundaries, exact reassembly."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from bridge.split import join_split, open_fence, split_message
from tests.limit_shapes import DISCORD_CONTENT as DISCORD
from tests.limit_shapes import FENCED, SHAPES, rejoined, shapes
from tests.limit_shapes import SLACK_MARKDOWN as SLACK

# The markers a cut inside a code block adds, as a reader would recognise them.
CLOSE_MARKER = re.compile(r"\n[ \t]*(`{3,}|~{3,})\Z")
# Longest fence opening line the generator writes is "```typescript": re-open
# line + newline + close marker stay below this.
MARKER_OVERHEAD = 24


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 100, ["short"]),
        ("", 10, []),
        ("exactly ten", 11, ["exactly ten"]),
        # Paragraph, then line, then space; whitespace stays with the earlier message.
        ("para one\n\npara two", 16, ["para one\n\n", "para two"]),
        ("line one\nline two", 16, ["line one\n", "line two"]),
        ("one two\nthree four five", 16, ["one two\n", "three four five"]),
        ("word " * 5, 16, ["word word word ", "word word "]),
        # A paragraph break in the first half loses to a line break in the second.
        ("ab\n\ncd ef gh\nij kl", 14, ["ab\n\ncd ef gh\n", "ij kl"]),
        # Only a word longer than the limit is cut.
        ("x" * 40, 20, ["x" * 20, "x" * 20]),
        ("ab " + "x" * 30, 20, ["ab ", "x" * 20, "x" * 10]),
        # Inside a fence: close, then re-open with the language.
        (
            "```py\n" + "a = 1\n" * 6 + "```\n",
            30,
            ["```py\na = 1\na = 1\na = 1\n\n```", "```py\na = 1\na = 1\na = 1\n```\n"],
        ),
        (
            "~~~\n" + "b\n" * 12 + "~~~",
            20,
            ["~~~\nb\nb\nb\nb\nb\nb\n\n~~~", "~~~\nb\nb\nb\nb\nb\nb\n~~~"],
        ),
        # The closing marker is as long as the opening run.
        (
            "````md\n" + "c\n" * 10 + "````",
            24,
            ["````md\nc\nc\nc\nc\nc\nc\n\n````", "````md\nc\nc\nc\nc\n````"],
        ),
        # Right before / right after a fence beats inside it.
        (
            "Some intro words.\n```sh\nls\n```\nSome closing words.",
            40,
            ["Some intro words.\n```sh\nls\n```\n", "Some closing words."],
        ),
        (
            "Intro words here, quite a few of them.\n\n```sh\n" + "ls -la\n" * 6 + "```\nEnd.",
            60,
            [
                "Intro words here, quite a few of them.\n\n",
                "```sh\n" + "ls -la\n" * 6 + "```\nEnd.",
            ],
        ),
        # ... unless that boundary is so early that the message would be mostly empty.
        (
            "Intro.\n\n```sh\n" + "ls -la\n" * 7 + "```\nEnd.",
            60,
            ["Intro.\n\n```sh\n" + "ls -la\n" * 6 + "\n```", "```sh\nls -la\n```\nEnd."],
        ),
        # A fence nested in a list item: closed at its indentation, re-opened at top level.
        (
            "- step\n  ```sh\n  make one\n  make two\n  ```\n",
            32,
            ["- step\n  ```sh\n  make one\n\n  ```", "```sh\n  make two\n  ```\n"],
        ),
        # "```inline```" on its own line is inline code, not a fence.
        ("```x``` " * 6, 20, ["```x``` ```x``` ", "```x``` ```x``` ", "```x``` ```x``` "]),
    ],
)
def test_table(text: str, limit: int, expected: list[str]) -> None:
    parts = split_message(text, limit)
    assert parts == expected
    assert join_split(parts) == text


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        split_message("abc", 0)


def test_open_fence() -> None:
    assert open_fence("text\n```py\ncode") == "```py"
    assert open_fence("```py\ncode\n```") is None
    assert open_fence("~~~\n```\n") == "~~~"  # a ``` line does not close a ~~~ fence
    assert open_fence("````\n```\n") == "````"  # nor a shorter run
    assert open_fence("```a```") is None


WORDS = ["alpha", "beta", "gamma", "δέλτα", "e", "word", "**bold**", "[link](https://x.y/a_b)"]
LANGS = ["", "python", "sh", "typescript", "json"]


def random_text(rng: random.Random) -> str:
    blocks = []
    for _ in range(rng.randint(1, 40)):
        kind = rng.random()
        if kind < 0.25:
            lang = rng.choice(LANGS)
            fence = rng.choice(["```", "```", "~~~", "````"])
            indent = rng.choice(["", "", "  "])
            body = "\n".join(
                indent
                + " " * rng.choice([0, 4])
                + " ".join(
                    rng.choice(["x", "y = 2", "print(1)", ""]) for _ in range(rng.randint(1, 8))
                )
                for _ in range(rng.randint(1, 40))
            )
            head = "- item\n" if indent else ""
            blocks.append(f"{head}{indent}{fence}{lang}\n{body}\n{indent}{fence}")
        elif kind < 0.3:
            blocks.append("z" * rng.randint(1, 300))  # a long word
        elif kind < 0.4:
            blocks.append("\n".join(f"- {rng.choice(WORDS)} {rng.choice(WORDS)}" for _ in range(5)))
        else:
            words = [rng.choice(WORDS) for _ in range(rng.randint(1, 120))]
            blocks.append(" ".join(words))
    return "".join(block + rng.choice(["\n\n", "\n", "\n\n\n", " \n"]) for block in blocks)[:-1]


def check(text: str, limit: int) -> list[str]:
    parts = split_message(text, limit)
    assert join_split(parts) == text
    for index, part in enumerate(parts):
        assert 0 < len(part) <= limit
        assert open_fence(part) is None, part  # fences balanced in every message
        if index + 1 == len(parts):
            continue
        following = parts[index + 1]
        marker = CLOSE_MARKER.search(part)
        marked = marker is not None and following.startswith(marker.group(1)[0])
        left = part[: marker.start()] if marker and marked else part
        right = following.split("\n", 1)[1] if marked else following
        if not left[-1].isspace() and not right[:1].isspace():
            # Cut inside a word: only allowed when the word cannot fit a message.
            tail = re.search(r"\S*\Z", left)
            head = re.match(r"\S*", right)
            assert tail is not None and head is not None
            word = tail.group() + head.group()
            assert len(word) > limit - MARKER_OVERHEAD, (word, limit)
    return parts


@pytest.mark.parametrize("seed", range(400))
def test_properties(seed: int) -> None:
    rng = random.Random(seed)
    text = random_text(rng)
    limit = rng.choice([50, 80, 200, 500, 1000, 2000, 3000, 4000])
    check(text, limit)


def test_round_trip_on_adversarial_text() -> None:
    # Fence-like fragments everywhere, tiny limits: the markers must never be
    # confused with text, whatever the input.
    rng = random.Random(7)
    alphabet = ["`", "~", "\n", " ", "a", "py", "```", "~~~", "\n\n", "````", "```py\n", "\n```\n"]
    for _ in range(4000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        limit = rng.randint(1, 40)
        parts = split_message(text, limit)
        assert all(0 < len(part) <= limit for part in parts), (text, limit, parts)
        assert join_split(parts) == text, (text, limit, parts)


def long_answer() -> str:
    code = "\n".join(f"    print({i}, 'x' * {i})" for i in range(120))
    sections = []
    for i, lang in enumerate(["python", "sh", "", "json", "python"]):
        prose = " ".join(f"Sentence {j} of section {i} explains the step." for j in range(40))
        sections.append(f"## Section {i}\n\n{prose}\n\n```{lang}\ndef f():\n{code}\n```")
    text = "\n\n".join(sections)
    assert len(text) > 20_000
    return text


@pytest.mark.parametrize("limit", [2000, 3000, 12000])
def test_twenty_thousand_characters_with_code(limit: int) -> None:
    text = long_answer()
    parts = check(text, limit)
    assert len(parts) >= 2
    # Most messages are well filled: splitting does not degenerate into crumbs.
    assert sum(len(p) for p in parts) / len(parts) > limit / 2 or len(parts) == 2
    # Every cut inside code re-opens with its language.
    for before, after in itertools.pairwise(parts):
        if before.endswith("\n```"):
            assert after.startswith(("```python\n", "```sh\n", "```\n", "```json\n"))


def test_discord_limit_with_one_huge_code_block() -> None:
    text = "Here you go:\n\n```python\n" + "value = compute(1, 2, 3)\n" * 600 + "```\n\nDone."
    parts = check(text, 2000)
    assert parts[0] == "Here you go:\n\n" or parts[0].startswith("Here you go:\n\n```python\n")
    assert all(p.startswith("```python\n") for p in parts[1:-1])
    assert parts[-1].endswith("```\n\nDone.")


# -- hard limits at the boundary ----------------------------------------------------
# The limits and texts come from tests/limit_shapes.py (the platforms' own numbers).


def fences_balanced(part: str) -> bool:
    """Every line that starts a run of three backticks is paired (a reader's count)."""
    return sum(1 for line in part.split("\n") if line.startswith("```")) % 2 == 0


@pytest.mark.parametrize("limit", [DISCORD, SLACK])
@pytest.mark.parametrize("shape", SHAPES)
def test_exactly_the_limit_is_one_message_as_it_is(limit: int, shape: str) -> None:
    text = shapes(limit)[shape]
    assert len(text) == limit
    assert split_message(text, limit) == [text]


@pytest.mark.parametrize("limit", [DISCORD, SLACK])
@pytest.mark.parametrize("shape", SHAPES)
def test_one_over_the_limit_is_two_messages_none_over_it(limit: int, shape: str) -> None:
    text = shapes(limit + 1)[shape]
    parts = split_message(text, limit)
    assert len(parts) == 2
    assert [len(p) <= limit for p in parts] == [True, True], [len(p) for p in parts]
    assert join_split(parts) == text
    assert rejoined(parts) == text
    if shape == FENCED:
        assert all(fences_balanced(p) for p in parts)


@pytest.mark.parametrize("shape", SHAPES)
def test_five_thousand_characters_without_a_break(shape: str) -> None:
    text = shapes(5_000)[shape]
    assert split_message(text, SLACK) == [text]
    parts = split_message(text, DISCORD)
    assert len(parts) == 3 and all(len(p) <= DISCORD for p in parts), [len(p) for p in parts]
    assert join_split(parts) == text
    assert rejoined(parts) == text
    if shape == FENCED:
        # Cut inside the code: each message is a code block of its own.
        assert [p.startswith("```python\n") and p.endswith("\n```") for p in parts] == [True] * 3
        assert "".join(p.removeprefix("```python\n").removesuffix("\n```") for p in parts) == (
            "z" * (5_000 - 14)
        )
    else:
        assert "".join(parts) == text  # no marker added where there is no fence
