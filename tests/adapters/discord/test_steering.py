"""Reactions on answers and ``/stop``, on the real discord.py client against the local
fake Discord; the core is the recording stand-in (``discord_world.Core``), so what
is asserted is what the adapter asks of the core and what people see."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.discord.app import DiscordAdapter
from adapters.discord.steering import NOTHING_TO_STOP, STOP_REFUSED, STOPPED
from bridge.errors import QuestionRefused
from bridge.events import ThreadKey
from bridge.intake import REGENERATE_LATEST_ONLY
from bridge.openwebui.organise import Rater
from bridge.policy import AccessPolicy
from tests.adapters.discord.discord_world import Core, World, discord_world, next_event
from tests.adapters.discord.test_app import answer
from tests.fakes.discord_server import BOT_USER_ID, Message

MENTION = f"<@{BOT_USER_ID}>"
DENIED = "4242"
EPHEMERAL = 1 << 6


@pytest.fixture
async def world() -> AsyncIterator[World]:
    core = Core(policy=AccessPolicy(denied_users=frozenset({DENIED})))
    async with discord_world(core) as world:
        world.fake.add_user(DENIED, name="mallory", global_name="Mallory")
        world.fake.add_member(world.guild, DENIED)
        yield world


async def answered(world: World, adapter: DiscordAdapter, text: str = "An answer.") -> Message:
    """Ada asks in #general; the answer's message in its thread, known to the core."""
    fake = world.fake
    fake.user_says(world.general, world.ada, f"{MENTION} a question")
    event = await next_event(world, len(world.core.events) + 1)
    await answer(adapter, event, text)
    [shown] = fake.bot_messages(event.thread.thread)
    world.core.answers[shown.id] = event.thread
    return shown


async def ratings(world: World, count: int) -> list[tuple[str, Rater, int, bool]]:
    await world.fake.wait_for(lambda: len(world.core.ratings) >= count, what=f"{count} rating(s)")
    await asyncio.sleep(0.05)
    return world.core.ratings


async def test_thumbs_rate_the_answer_as_the_person_in_delivery_order(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    shown = await answered(world, adapter)
    grace = fake.add_user(name="grace", global_name="Grace")
    fake.add_member(world.guild, grace)
    fake.react(shown.id, world.ada, "👍")
    fake.react(shown.id, world.ada, "👎🏽")  # a skin tone is still 👎
    fake.unreact(shown.id, world.ada, "👎🏽")
    fake.react(shown.id, grace, "👍")
    ada = Rater("discord", world.ada, "Ada L.")  # the server nickname
    assert await ratings(world, 4) == [
        (shown.id, ada, 1, False),
        (shown.id, ada, -1, False),
        (shown.id, Rater("discord", world.ada, world.ada), -1, True),  # taken back: no name
        (shown.id, Rater("discord", grace, "Grace"), 1, False),
    ]
    assert fake.bot_messages(shown.channel_id) == [shown]  # nothing said about it


async def test_a_dm_rating_names_the_person(world: World, adapter: DiscordAdapter) -> None:
    fake = world.fake
    dm = fake.add_dm(world.ada)
    fake.user_says(dm, world.ada, "hello")
    await answer(adapter, await next_event(world, 1), "Hi!")
    [shown] = fake.bot_messages(dm)
    fake.react(shown.id, world.ada, "👍")
    [(message, rater, vote, removed)] = await ratings(world, 1)
    assert (message, rater, vote, removed) == (shown.id, rater, 1, False)
    assert rater == Rater("discord", world.ada, "Ada Lovelace")  # no server: the global name


async def test_reactions_that_mean_nothing_cost_no_call_and_say_nothing(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    shown = await answered(world, adapter)
    other_bot = fake.add_user(name="otherbot", global_name="Other", bot=True)
    fake.add_member(world.guild, other_bot)
    question = fake.user_says(shown.channel_id, world.ada, "my own message")
    calls = len(fake.calls)
    fake.react(shown.id, BOT_USER_ID, "👍")  # the bridge's own
    fake.react(shown.id, other_bot, "👍")
    fake.react(shown.id, world.ada, "❤️")
    fake.react(question.id, world.ada, "👍")  # a person's message, not an answer
    fake.react(shown.id, world.ada, "⏹️")
    fake.unreact(shown.id, world.ada, "⏹️")  # taking back a stop changes nothing
    fake.react(shown.id, world.ada, "👎")  # the barrier: handled, so the others were seen
    [(message, _, vote, _)] = await ratings(world, 1)
    assert (message, vote) == (shown.id, -1)
    assert world.core.stopped == [] and world.core.regenerated == []
    assert len(fake.calls) == calls  # not one Discord call for any of them


async def test_a_refused_persons_reactions_are_ignored_silently(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    shown = await answered(world, adapter)
    world.core.running.add(world.core.answers[shown.id])
    for emoji in ("👍", "⏹️", "🔁"):
        fake.react(shown.id, DENIED, emoji)
    fake.react(shown.id, world.ada, "👎")  # the barrier
    [(_, rater, _, _)] = await ratings(world, 1)
    assert rater.user_id == world.ada
    assert world.core.stopped == [] and world.core.regenerated == []
    assert fake.bot_messages(shown.channel_id) == [shown]  # no notice either


async def test_stop_reaction_stops_the_answer_of_that_thread(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    shown = await answered(world, adapter)
    key = world.core.answers[shown.id]
    world.core.running.add(key)
    fake.react(shown.id, world.ada, "⏹️")
    await fake.wait_for(lambda: world.core.stopped == [key], what="the stop")
    fake.react(shown.id, world.ada, "🛑")  # nothing under way any more: nothing happens
    await asyncio.sleep(0.1)
    assert world.core.stopped == [key]


async def test_repeat_asks_for_another_answer_once_per_answer_version(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    shown = await answered(world, adapter)
    fake.react(shown.id, world.ada, "🔁")
    await fake.wait_for(lambda: len(world.core.regenerated) == 1, what="the regenerate")
    [(message, first_id)] = world.core.regenerated
    assert message == shown.id and first_id.startswith(f"reaction:{shown.channel_id}:{shown.id}:")
    # The gateway delivers the same reaction again (a resume): the same event.
    assert fake.replay_last(1, event="MESSAGE_REACTION_ADD") == 1
    await asyncio.sleep(0.2)
    assert len(world.core.regenerated) == 1
    # The new answer is shown (the message edited); 🔁 again asks again.
    channel = adapter.client.get_partial_messageable(int(shown.channel_id))
    await channel.get_partial_message(int(shown.id)).edit(content="Another answer.")
    fake.unreact(shown.id, world.ada, "🔁")
    fake.react(shown.id, world.ada, "🔁")
    await fake.wait_for(lambda: len(world.core.regenerated) == 2, what="the second regenerate")
    assert world.core.regenerated[1][1] != first_id
    assert fake.replies_to(shown.id) == []


async def test_a_refused_regenerate_is_told_under_the_answer(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    shown = await answered(world, adapter)
    world.core.regenerate_refusal = QuestionRefused("not the latest", REGENERATE_LATEST_ONLY)
    fake.react(shown.id, world.ada, "🔁")
    await fake.wait_for(lambda: fake.replies_to(shown.id), what="the notice")
    [told] = fake.replies_to(shown.id)
    assert told.content == REGENERATE_LATEST_ONLY and told.channel_id == shown.channel_id
    assert fake.pings(shown.channel_id) == []
    world.core.regenerate_refusal = QuestionRefused("busy", None)  # silence
    fake.unreact(shown.id, world.ada, "🔁")
    fake.react(shown.id, world.ada, "🔁")
    await asyncio.sleep(0.2)
    assert len(fake.replies_to(shown.id)) == 1


async def slash(world: World, user: str, channel: str) -> tuple[str, bool]:
    """``user`` runs /stop in ``channel``: what the bot answered, and whether only they see it."""
    fake = world.fake
    count = len(fake.interaction_said())
    fake.interaction(user, "stop", channel)
    await fake.wait_for(lambda: len(fake.interaction_said()) > count, what="/stop answered")
    response = fake.interaction_responses[-1]
    return fake.interaction_said()[-1], bool(response.data.get("flags", 0) & EPHEMERAL)


async def test_slash_stop_in_a_thread_and_in_a_dm(world: World, adapter: DiscordAdapter) -> None:
    fake = world.fake
    assert "stop" in [c["name"] for c in fake.commands]
    shown = await answered(world, adapter)
    thread = shown.channel_id
    key = ThreadKey("discord", world.guild, thread, thread)
    world.core.running.add(key)
    assert await slash(world, world.ada, thread) == (STOPPED, True)
    assert world.core.stopped == [key]
    assert await slash(world, world.ada, thread) == (NOTHING_TO_STOP, True)
    assert await slash(world, world.ada, world.general) == (NOTHING_TO_STOP, True)
    world.core.running.add(key)
    assert await slash(world, DENIED, thread) == (STOP_REFUSED, True)
    assert world.core.stopped == [key]  # still running: a refused person stops nothing

    dm = fake.add_dm(world.ada)
    dm_key = ThreadKey("discord", "", dm, dm)
    world.core.running.add(dm_key)
    assert await slash(world, world.ada, dm) == (STOPPED, True)
    assert world.core.stopped == [key, dm_key]
    assert fake.bot_messages(thread) == [shown]  # nothing posted for everyone to see
