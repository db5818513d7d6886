"""No Discord message over Discord's 2,000 characters, whatever the answer: texts
with no natural cut at exactly the limit and one over it, through the real discord.py
client and the local Discord (which refuses longer content with 50035, as Discord
does)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import discord
import pytest

from adapters.discord.reply import DiscordChannel, DiscordReply
from adapters.discord.text import Names, thread_name
from tests.fakes.discord_server import FakeDiscord, point_discord_py_at
from tests.limit_shapes import DISCORD_CONTENT, FENCED, SHAPES, rejoined, shapes

pytestmark = pytest.mark.timeout(20)


@dataclass
class Place:
    fake: FakeDiscord
    client: discord.Client
    channel: str

    def reply(self) -> DiscordReply:
        target = self.client.get_partial_messageable(int(self.channel))
        return DiscordReply(DiscordChannel(target), typing_renew=60, final_retry_delays=())

    def shown(self) -> list[str]:
        return [m.content for m in self.fake.bot_messages(self.channel)]

    def longest_sent(self) -> int:
        bodies = [c.body for c in self.fake.calls if isinstance(c.body, dict)]
        return max((len(str(b.get("content") or "")) for b in bodies), default=0)


@pytest.fixture
async def place() -> AsyncIterator[Place]:
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Lab")
        channel = fake.add_channel(guild, "general")
        with point_discord_py_at(fake):
            client = discord.Client(intents=discord.Intents.none())
            await client.login("fake-bot-token")
            try:
                yield Place(fake, client, channel)
            finally:
                await client.close()


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
    assert place.longest_sent() <= DISCORD_CONTENT
    assert rejoined(shown) == text


@pytest.mark.parametrize("shape", SHAPES)
async def test_five_thousand_characters_without_a_break(place: Place, shape: str) -> None:
    text = shapes(5_000)[shape]
    await place.reply().finish(text)
    shown = place.shown()
    assert len(shown) == 3 and place.longest_sent() <= DISCORD_CONTENT
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
