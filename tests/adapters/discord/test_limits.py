"""No Discord message over Discord's 2,000 characters, whatever the answer: texts
with no natural cut at exactly the limit and one over it, through the real discord.py
client and the local Discord (which refuses longer content with 50035, as Discord
does)."""

from __future__ import annotations

import pytest

from adapters.discord.text import Names, thread_name
from tests.adapters.discord.conftest import Place
from tests.limit_shapes import DISCORD_CONTENT, FENCED, SHAPES, rejoined, shapes

pytestmark = pytest.mark.timeout(20)


def longest_sent(place: Place) -> int:
    bodies = [c.body for c in place.fake.calls if isinstance(c.body, dict)]
    return max((len(str(b.get("content") or "")) for b in bodies), default=0)


@pytest.mark.parametrize("over", [0, 1], ids=["at the limit", "one over"])
@pytest.mark.parametrize("shape", SHAPES)
async def test_no_message_over_the_limit(place: Place, shape: str, over: int) -> None:
    text = shapes(DISCORD_CONTENT + over)[shape]
    reply = place.reply()
    await reply.start()
    assert await reply.update(text[:1_500])
    await reply.finish(text)

    shown = place.shown()
    assert len(shown) == 1 + over
    assert all(len(m) <= DISCORD_CONTENT for m in shown), [len(m) for m in shown]
    assert longest_sent(place) <= DISCORD_CONTENT
    assert rejoined(shown) == text


@pytest.mark.parametrize("shape", SHAPES)
async def test_five_thousand_characters_without_a_break(place: Place, shape: str) -> None:
    text = shapes(5_000)[shape]
    await place.reply().finish(text)
    shown = place.shown()
    assert len(shown) == 3 and longest_sent(place) <= DISCORD_CONTENT
    assert rejoined(shown) == text
    if shape == FENCED:  # every message is a code block of its own
        assert all(m.startswith("```python\n") and m.endswith("\n```") for m in shown)


@pytest.mark.parametrize(
    ("question", "name"),
    [
        ("x" * 100, "x" * 100),  # exactly Discord's 100
        ("x" * 101, "x" * 99 + "…"),  # one over: cut, and said to be
        (shapes(5_000)["a URL"], shapes(5_000)["a URL"][:99] + "…"),
    ],
    ids=["at the limit", "one over", "a 5,000-character URL"],
)
def test_thread_names_stay_within_discords_100(question: str, name: str) -> None:
    assert thread_name(question, Names()) == name
