"""Per-channel behaviour on Discord: what the bot answers where (``respond_to``), and
where each conversation lives (its place, the place's name, the link to its thread),
on the real discord.py client against the local fake Discord."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from adapters.discord.app import DiscordAdapter, intents, make_client
from bridge.channels import ChannelRules, Channels
from bridge.events import ThreadKey
from tests.adapters.discord.discord_world import Core, World, discord_world, next_event
from tests.adapters.discord.test_app import answer
from tests.fakes.discord_server import BOT_USER_ID, GUILD_FORUM

MENTION = f"<@{BOT_USER_ID}>"
JUMP = "https://discord.com/channels"
OPEN_THREAD = "POST /channels/{channel_id}/messages/{message_id}/threads"


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with discord_world(Core()) as world:
        yield world


def configure(world: World, **respond_to: str) -> dict[str, str]:
    """Channels named like ``respond_to``'s keys, each with that setting; their ids."""
    ids = {name: world.fake.add_channel(world.guild, name) for name in respond_to}
    world.core.channels = Channels(
        by_id={ids[name]: ChannelRules(respond_to=value) for name, value in respond_to.items()}  # type: ignore[arg-type]
    )
    return ids


async def test_respond_to_all_opens_a_thread_for_every_top_level_message(
    world: World,
) -> None:
    ids = configure(world, support="all")
    client = make_client(intents(), guild_ready_timeout=0.05)
    adapter = DiscordAdapter(world.core, world.settings, places=world.core, client=client)
    await adapter.start()  # after the channel exists: the bot's cache knows it
    try:
        fake = world.fake
        asked = fake.user_says(ids["support"], world.ada, "the printer is on fire")
        event = await next_event(world, 1)
        assert event.thread == ThreadKey("discord", world.guild, asked.id, asked.id)
        assert event.text == "the printer is on fire" and event.place == ids["support"]
        await answer(adapter, event, "Have you tried water?")
        assert [t["id"] for t in fake.threads(ids["support"])] == [asked.id]
        assert [m.content for m in fake.bot_messages(asked.id)] == ["Have you tried water?"]
        fake.user_says(world.general, world.ada, "chatter elsewhere")  # mentions only there
        fake.user_says(asked.id, world.ada, "still burning")  # the thread continues
        follow_up = await next_event(world, 2)
        assert follow_up.thread == event.thread and follow_up.place == ids["support"]
        await asyncio.sleep(0.1)
        assert len(world.core.events) == 2
    finally:
        await adapter.close()


async def test_respond_to_off_answers_nothing_there_not_even_a_mention(world: World) -> None:
    fake = world.fake
    asked = fake.user_says(world.general, world.ada, f"{MENTION} before the switch")
    ids = configure(world, quiet="off")
    world.core.channels = replace(
        world.core.channels,
        by_id={**world.core.channels.by_id, world.general: ChannelRules(respond_to="off")},
    )
    adapter = DiscordAdapter(
        world.core,
        world.settings,
        places=world.core,
        client=make_client(intents(), guild_ready_timeout=0.05),
    )
    await adapter.start()
    try:
        # A conversation from before the channel was switched off: a thread the bridge knows.
        thread = fake.add_thread(world.general, "earlier", thread_id=asked.id)
        world.core.threads.add(ThreadKey("discord", world.guild, thread, thread))
        fake.user_says(ids["quiet"], world.ada, f"{MENTION} anyone?")
        fake.user_says(thread, world.ada, "and now?")
        fake.user_says(world.general, world.ada, f"{MENTION} hello?")
        await asyncio.sleep(0.3)
        assert world.core.events == [] and world.core.refused == []
        assert fake.calls_of("POST", OPEN_THREAD) == []
        assert not any(
            m.by_bot for c in (ids["quiet"], thread, world.general) for m in fake.channel_view(c)
        )
        dm = fake.add_dm(world.ada)
        fake.user_says(dm, world.ada, "in private")  # DMs follow BRIDGE_ALLOW_DMS
        event = await next_event(world, 1)
        assert event.direct and event.place == "" and event.channel == dm
    finally:
        await adapter.close()


async def test_a_thread_follows_its_parent_channel(world: World, adapter: DiscordAdapter) -> None:
    fake = world.fake
    asked = fake.user_says(world.general, world.ada, f"{MENTION} first")
    first = await next_event(world, 1)
    assert (first.place, first.direct) == (world.general, False)
    await answer(adapter, first, "One.")
    fake.user_says(asked.id, world.ada, "second")
    second = await next_event(world, 2)
    assert second.place == world.general and second.channel == world.general
    forum = fake.add_channel(world.guild, "help", type=GUILD_FORUM)
    post, _ = fake.forum_post(forum, world.ada, "Engines", f"{MENTION} how?")
    in_post = await next_event(world, 3)
    assert in_post.thread.thread == post and in_post.place == forum


async def test_prepare_names_the_place_and_links_the_thread(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    asked = fake.user_says(world.general, world.ada, f"{MENTION} where am I?")
    prepared = await adapter.prepare(await next_event(world, 1))
    assert prepared.place_name == "Lab \u203a #general"
    assert prepared.link == f"{JUMP}/{world.guild}/{asked.id}"  # the thread it opened
    dm = fake.add_dm(world.ada)
    fake.user_says(dm, world.ada, "and here?")
    in_dm = await adapter.prepare(await next_event(world, 2))
    assert (in_dm.place_name, in_dm.link) == ("DMs", f"{JUMP}/@me/{dm}")


async def test_a_renamed_channel_and_server_are_named_anew(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    fake.user_says(world.general, world.ada, f"{MENTION} one")
    assert (await adapter.prepare(await next_event(world, 1))).place_name == "Lab \u203a #general"
    fake.rename_channel(world.general, "help-desk")
    fake.rename_guild(world.guild, "Laboratory")
    await fake.wait_for(
        lambda: (
            getattr(adapter.client.get_channel(int(world.general)), "name", "") == "help-desk"
            and getattr(adapter.client.get_guild(int(world.guild)), "name", "") == "Laboratory"
        ),
        what="the renames in the cache",
    )
    fake.user_says(world.general, world.ada, f"{MENTION} two")
    renamed = await adapter.prepare(await next_event(world, 2))
    assert renamed.place_name == "Laboratory \u203a #help-desk"


async def test_without_thread_permission_the_link_opens_the_question(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    fake.fail_next(OPEN_THREAD, 403, 50013, "Missing Permissions")
    asked = fake.user_says(world.general, world.ada, f"{MENTION} no threads here")
    prepared = await adapter.prepare(await next_event(world, 1))
    assert prepared.link == f"{JUMP}/{world.guild}/{world.general}/{asked.id}"


async def test_a_regenerate_is_placed_without_any_call(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    asked = fake.user_says(world.general, world.ada, f"{MENTION} again please")
    event = await next_event(world, 1)
    await answer(adapter, event, "First answer.")
    calls = len(fake.calls)
    again = replace(
        event,
        event_id="reaction:x",
        message_id=f"{event.message_id}~reaction:x",
        regenerates=1,
        question_message_id=event.message_id,
    )
    prepared = await adapter.prepare(again)
    assert len(fake.calls) == calls  # no fetch, no thread opened again
    assert prepared.author_name == "Ada L." and prepared.text == again.text
    assert prepared.place_name == "Lab \u203a #general"
    assert prepared.link == f"{JUMP}/{world.guild}/{asked.id}"


async def test_a_regenerate_without_a_thread_edits_the_answer_where_it_is(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    fake.fail_next(OPEN_THREAD, 403, 50013, "Missing Permissions")
    asked = fake.user_says(world.general, world.ada, f"{MENTION} no threads here")
    event = await next_event(world, 1)
    saved = await answer(adapter, event, "First answer.")
    [first] = fake.bot_messages(world.general)
    assert first.reference == asked.id  # a reply to the question
    assert saved == [first.id]
    again = replace(
        event,
        event_id=f"reaction:{world.general}:{first.id}:{world.ada}:x:1",
        message_id=f"{event.message_id}~reaction",
        regenerates=1,
        question_message_id=event.message_id,
    )
    # The chat's link still opens the question, not a thread that does not exist.
    assert (await adapter.prepare(again)).link == f"{JUMP}/{world.guild}/{world.general}/{asked.id}"
    assert await answer(adapter, again, "Second answer.", saved) == saved
    assert [m.content for m in fake.bot_messages(world.general)] == ["Second answer."]
