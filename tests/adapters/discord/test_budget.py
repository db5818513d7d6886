"""The process's Discord call budget, through the real discord.py client and the local
Discord enforcing Discord's limits (50 requests a second per bot, 5 a second per route
and channel): many answers at once all end whole, without running into the global
limit; an intermediate update with no room is skipped, never sent later; a final
text goes on through 429s."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from adapters.discord import budget
from adapters.discord.app import DiscordAdapter, intents, make_client
from adapters.discord.settings import DiscordSettings
from bridge.delivery import Delivery
from bridge.events import PlatformEvent
from bridge.policy import Limits
from bridge.reply import Capabilities
from bridge.split import join_split
from tests.adapters.discord.conftest import Place
from tests.adapters.discord.discord_world import Core, World, discord_world
from tests.fakes.discord_server import BOT_USER_ID

pytestmark = pytest.mark.timeout(90)

EDIT = "PATCH /channels/{channel_id}/messages/{message_id}"
ANSWERS = 60
CHANNELS = 12  # a few questions per channel, each opening its thread there
STREAMING = Capabilities(max_message_length=2000, min_update_interval=0.2)


def final_text(n: int) -> str:
    """Answer ``n``: every fourth one longer than one Discord message."""
    words = 500 if n % 4 == 0 else 60
    return f"Answer {n}: " + " ".join(f"word{n}-{i}" for i in range(words))


async def stream(bot: DiscordAdapter, event: PlatformEvent, final: str) -> None:
    """One turn's platform side as the core runs it: texts offered as the model writes
    (the core's ``Delivery`` paces and skips), then the final text."""

    async def save(ids: Sequence[str]) -> None:
        pass

    delivery = Delivery(bot.reply(await bot.prepare(event), (), save), STREAMING)
    await delivery.start()
    for step in range(1, 9):
        delivery.offer(final[: len(final) * step // 9])
        await asyncio.sleep(0.15)
    await delivery.finish(final)


@pytest.fixture
async def crowded() -> AsyncIterator[tuple[World, list[str], DiscordAdapter]]:
    # Everyone may ask as often as they like: the per-person limit is not under test.
    async with discord_world(Core(limits=Limits(user_rate_limit=0))) as world:
        channels = [world.fake.add_channel(world.guild, f"help-{n}") for n in range(CHANNELS)]
        client = make_client(intents(), guild_ready_timeout=0.05)
        bot = DiscordAdapter(world.core, world.settings, places=world.core, client=client)
        await bot.start()
        try:
            yield world, channels, bot
        finally:
            await bot.close()


async def test_sixty_answers_at_once_all_end_whole_within_the_global_limit(
    crowded: tuple[World, list[str], DiscordAdapter],
) -> None:
    world, channels, bot = crowded
    fake = world.fake
    asked = [
        fake.user_says(channels[n % CHANNELS], world.ada, f"<@{BOT_USER_ID}> question {n}")
        for n in range(ANSWERS)
    ]
    await fake.wait_for(lambda: len(world.core.events) == ANSWERS, what="every question")
    events = {event.message_id: event for event in world.core.events}
    failed = [
        outcome
        for outcome in await asyncio.gather(
            *(stream(bot, events[q.id], final_text(n)) for n, q in enumerate(asked)),
            return_exceptions=True,
        )
        if outcome is not None
    ]

    assert failed == []
    for n, question in enumerate(asked):  # each thread ends with its whole answer
        assert join_split([m.content for m in fake.bot_messages(question.id)]) == final_text(n)
    assert len(fake.threads()) == ANSWERS  # none had to answer in the channel instead
    assert len(fake.rate_limited_globally) <= 3  # a stray one at most, waited out


def edits(place: Place) -> list[str]:
    return [c.body["content"] for c in place.fake.calls_of("PATCH", "/channels/*/messages/*")]


async def test_an_update_with_no_room_is_skipped_and_never_sent_later(place: Place) -> None:
    # One call at once, then one every two seconds.
    budget.attach(place.client, budget.DiscordBudget(budget.Rates(per_second=0.5, burst=1)))
    reply = place.reply()
    assert await reply.update("The first words")  # the first text waits its turn
    assert await reply.update("The first words and a few more") is False  # no room: skipped
    await reply.finish("The first words and a few more, and the end.")  # waits its turn

    assert place.shown() == ["The first words and a few more, and the end."]
    assert edits(place) == ["The first words and a few more, and the end."]


async def test_no_typing_indicator_when_the_budget_has_no_room(place: Place) -> None:
    spent = budget.attach(place.client, budget.DiscordBudget(budget.Rates(per_second=0.5, burst=1)))
    await spent.take()  # another answer's call
    reply = place.reply()
    await reply.start()  # typing is a nicety: not now
    await reply.finish("Hello.")

    assert place.fake.typing == []
    assert place.shown() == ["Hello."]


async def test_a_final_text_goes_on_through_global_429s(place: Place) -> None:
    budget.attach(place.client)
    reply = place.reply()
    assert await reply.update("Half")
    # More 429s in a row than discord.py tries (five), each from the global limit.
    place.fake.rate_limit_next(EDIT, retry_after=0.05, times=6, scope="global")
    await reply.finish("Half, and the whole answer.")

    assert place.shown() == ["Half, and the whole answer."]
    assert len(place.fake.rate_limited_globally) == 6


def test_replicas_of_one_bot_split_the_global_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # Discord counts the bot's calls from every process against one 50/s.
    monkeypatch.setenv("BRIDGE_REPLICAS", "2")
    replicas = DiscordSettings(bot_token="x").replicas
    assert replicas == 2
    assert budget.Rates.shared_by(replicas).per_second * replicas == budget.GLOBAL_RATE
