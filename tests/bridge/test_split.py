"""Splitting long answers: limits, word and fence boundaries, exact reassembly."""

from __future__ import annotations

import random

import pytest

from bridge.split import join_split, open_fence, split_message


def fences_balanced(part: str) -> bool:
    return open_fence(part) is None


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 100, ["short"]),
        ("para one\n\npara two", 16, ["para one\n\n", "para two"]),
        ("line one\nline two", 16, ["line one\n", "line two"]),
        ("word " * 5, 16, ["word word ", "word word word "]),
        ("x" * 40, 20, ["x" * 16, "x" * 16, "x" * 8]),
        (
            "```py\n" + "a = 1\n" * 6 + "```\n",
            30,
            ["```py\na = 1\na = 1\na = 1\n\n```", "```py\na = 1\na = 1\na = 1\n```\n"],
        ),
    ],
)
def test_table(text: str, limit: int, expected: list[str]) -> None:
    parts = split_message(text, limit)
    assert parts == expected
    assert join_split(parts) == text


def random_text(rng: random.Random) -> str:
    blocks = []
    for _ in range(rng.randint(1, 30)):
        kind = rng.random()
        if kind < 0.2:
            lang = rng.choice(["", "python", "sh"])
            fence = rng.choice(["```", "~~~"])
            body = "\n".join(
                " ".join(rng.choice(["x", "y = 2", "print(1)"]) for _ in range(rng.randint(1, 8)))
                for _ in range(rng.randint(1, 15))
            )
            blocks.append(f"{fence}{lang}\n{body}\n{fence}")
        elif kind < 0.25:
            blocks.append("z" * rng.randint(1, 300))
        else:
            words = [
                rng.choice(["alpha", "beta", "gamma", "δέλτα", "e", "word"])
                for _ in range(rng.randint(1, 80))
            ]
            blocks.append(" ".join(words))
    return rng.choice(["\n\n", "\n"]).join(blocks)


@pytest.mark.parametrize("seed", range(300))
def test_properties(seed: int) -> None:
    rng = random.Random(seed)
    text = random_text(rng)
    limit = rng.choice([50, 80, 200, 500, 2000, 4000])
    parts = split_message(text, limit)
    assert join_split(parts) == text
    longest_word = max((len(w) for w in text.split()), default=0)
    for part in parts:
        assert 0 < len(part) <= limit
        assert fences_balanced(part), part
    if longest_word < limit // 2:
        # No cut inside a word: every part but the last ends at whitespace or a fence marker.
        for part in parts[:-1]:
            assert part[-1].isspace() or part.endswith(("```", "~~~")), repr(part[-20:])


@pytest.mark.parametrize("limit", [2000, 3000, 12000])
def test_twenty_thousand_characters_with_code(limit: int) -> None:
    block = "```python\n" + "\n".join(f"print({i})" for i in range(400)) + "\n```"
    text = "\n\n".join(["Intro " * 300, block, "Middle " * 500, block, "End " * 1600])
    assert len(text) > 20000
    parts = split_message(text, limit)
    assert len(parts) >= 2
    assert all(len(p) <= limit and fences_balanced(p) for p in parts)
    assert join_split(parts) == text
