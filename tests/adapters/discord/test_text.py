"""Mentions made readable and thread names, table-style."""

from __future__ import annotations

import pytest

from adapters.discord.text import DEFAULT_THREAD_NAME, Names, readable, thread_name

NAMES = Names(users={"1": "Ada"}, roles={"2": "Admins"}, channels={"3": "general"})


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ("ask <@1>", "ask @Ada"),
        ("ask <@!1>", "ask @Ada"),
        ("tell <@&2> in <#3>", "tell @Admins in #general"),
        ("who is <@4>?", "who is @4?"),  # no mention object: the id
        ("<#5> and <@&6>", "#5 and @6"),
        ("nice <:party:123> <a:wave:456>", "nice :party: :wave:"),
        ("<@everyone> stays text", "<@everyone> stays text"),
        ("a < b > c", "a < b > c"),
    ],
)
def test_readable(content: str, text: str) -> None:
    assert readable(content, NAMES) == text


@pytest.mark.parametrize(
    ("question", "name"),
    [
        ("What is a monad?", "What is a monad?"),
        ("  first line  \nsecond", "first line"),
        ("\n\n```python\nprint(1)\n```", "python"),  # the fence says little but is a word
        ("## Heading\nbody", "Heading"),
        ("> quoted   words", "quoted words"),
        ("ask <@1> about <#3>", "ask @Ada about #general"),
        ("```\n```", DEFAULT_THREAD_NAME),
        ("", DEFAULT_THREAD_NAME),
        ("!!!", DEFAULT_THREAD_NAME),
    ],
)
def test_thread_name(question: str, name: str) -> None:
    assert thread_name(question, NAMES) == name


def test_long_thread_names_end_at_a_word() -> None:
    name = thread_name("word " * 40, NAMES)
    assert 1 <= len(name) <= 100
    assert name.endswith("word…")


def test_one_long_word_is_cut() -> None:
    name = thread_name("x" * 300, NAMES)
    assert len(name) == 100 and name.endswith("…")
