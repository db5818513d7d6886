"""The Discord adapter on the real discord.py client against the local fake Discord.

The core is a small stand-in that records what the adapter queues and judges
it with the real admission rules (the real core with real Open WebUI servers is
the e2e suite's job); each test then runs the turn's adapter side (``prepare``,
``reply``) as the core would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from adapters.check import check_discord_bot
from adapters.discord.app import DiscordAdapter, intents, make_client
from adapters.discord.commands import NEW_DONE
from adapters.discord.invite import INTENT_MISSING
from bridge.config import ConfigError
from bridge.events import PlatformEvent, ThreadKey
from bridge.split import join_split
from tests.adapters.discord.discord_world import (
    TOKEN,
    Core,
    World,
    discord_world,
    next_event,
)
from tests.fakes.discord_server import (
    APP_ID,
    BOT_USER_ID,
    GATEWAY_MESSAGE_CONTENT_LIMITED,
    GUILD_FORUM,
    FakeDiscord,
)

EDIT = "PATCH /channels/{channel_id}/messages/{message_id}"
OPEN_THREAD = "POST /channels/{channel_id}/messages/{message_id}/threads"


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with discord_world() as world:
        yield world


async def answer(
    bot: DiscordAdapter, event: PlatformEvent, text: str, ids: Sequence[str] = ()
) -> list[str]:
    """The adapter side of one turn, as the core runs it; the saved message ids."""
    saved: list[str] = list(ids)

    async def save(new: Sequence[str]) -> None:
        saved[:] = new

    prepared = await bot.prepare(event)
    handle = bot.reply(prepared, ids, save)
    await handle.start()
    for end in range(0, len(text), max(len(text) // 4, 1))[1:]:
        await handle.update(text[:end])
    await handle.finish(text)
    return saved


async def test_mention_opens_a_thread_and_the_answer_streams_into_it(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    asked = fake.user_says(
        world.general,
        world.ada,
        f"<@{BOT_USER_ID}> what do <@&{world.role}> say about <#{world.general}>?",
    )
    event = await next_event(world, 1)
    assert event.thread == ThreadKey("discord", world.guild, asked.id, asked.id)
    assert event.text == f"what do <@&{world.role}> say about <#{world.general}>?"
    assert event.author_name == "" and not event.needs_context

    prepared = await adapter.prepare(event)
    assert prepared.author_name == "Ada L."  # the server nickname the message carried
    assert prepared.text == "what do @mathematicians say about #general?"
    (thread,) = fake.threads(world.general)
    assert thread["id"] == asked.id
    assert thread["name"] == "what do @mathematicians say about #general?"

    text = "Poetical science, @everyone! Ask <@" + world.ada + "> or @here."
    saved = await answer(adapter, prepared, text)
    shown = fake.bot_messages(asked.id)
    assert [m.content for m in shown] == [text]
    assert saved == [m.id for m in shown]
    assert fake.typing_in(asked.id)  # typing before the first text
    assert fake.pings(asked.id) == []  # mentions off on every send and edit
    assert all(am == {"parse": []} for m in shown for am in m.allowed_mentions)


async def test_follow_up_in_the_thread_without_a_mention(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    asked = fake.user_says(world.general, world.ada, f"<@{BOT_USER_ID}> first")
    first = await next_event(world, 1)
    await answer(adapter, first, "One.")
    fake.user_says(asked.id, world.ada, "and then?")  # in the thread, no mention
    second = await next_event(world, 2)
    assert second.thread == first.thread
    assert second.order > first.order and not second.needs_context
    await answer(adapter, second, "Two.")
    assert [m.content for m in fake.bot_messages(asked.id)] == ["One.", "Two."]
    assert len(fake.threads(world.general)) == 1
    fake.user_says(world.general, world.ada, "chatter in the channel")  # no mention: nothing
    await asyncio.sleep(0.1)
    assert len(world.core.events) == 2


async def test_bots_webhooks_and_system_messages_get_no_answer(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    other = fake.add_user(name="otherbot", bot=True)
    fake.add_member(world.guild, other)
    fake.user_says(world.general, other, f"<@{BOT_USER_ID}> loop with me")
    fake.user_says(world.general, world.ada, f"<@{BOT_USER_ID}> via hook", webhook=True)
    fake.user_says(world.general, world.ada, f"<@{BOT_USER_ID}>", type=7)
    fake.user_says(world.general, world.ada, f"<@{BOT_USER_ID}> a real one")
    event = await next_event(world, 1)
    await asyncio.sleep(0.1)
    assert [e.text for e in world.core.events] == ["a real one"]
    assert event.author_id == world.ada


async def test_mention_in_an_existing_thread_joins_with_its_history(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    forum = fake.add_channel(world.guild, "help", type=GUILD_FORUM)
    thread, _ = fake.forum_post(forum, world.ada, "Engines", "How do engines compute?")
    fake.user_says(thread, world.ada, "Any idea, anyone?")
    fake.user_says(thread, world.ada, f"<@{BOT_USER_ID}> can you help?")
    event = await next_event(world, 1)
    assert event.thread == ThreadKey("discord", world.guild, thread, thread)
    assert event.needs_context
    prepared = await adapter.prepare(event)
    assert [(c.author_name, c.text) for c in prepared.context] == [
        ("Ada L.", "How do engines compute?"),
        ("Ada L.", "Any idea, anyone?"),
    ]
    assert fake.threads(forum) and len(fake.threads()) == 1  # no thread opened from a post


async def test_dm_and_new(world: World, adapter: DiscordAdapter) -> None:
    fake = world.fake
    dm = fake.add_dm(world.ada)
    fake.user_says(dm, world.ada, "hello")
    first = await next_event(world, 1)
    key = ThreadKey("discord", "", dm, dm)
    assert first.thread == key
    await answer(adapter, first, "Hi!")
    assert [c["name"] for c in fake.commands] == ["new", "stop"]  # synced at start
    fake.interaction(world.ada, "new", dm)
    await fake.wait_for(lambda: fake.interaction_said(), what="the /new response")
    assert world.core.started_over == [key]
    (response,) = fake.interaction_responses
    assert response.type == 5  # acknowledged at once (Discord's 3 s), then said
    assert response.data["flags"] & (1 << 6)  # ephemeral
    assert fake.interaction_said() == [NEW_DONE]
    fake.user_says(dm, world.ada, "new topic")
    second = await next_event(world, 2)
    assert second.thread == key  # the core opens a new chat for the retired key


async def test_a_long_answer_with_code_is_split_and_adds_up(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    asked = fake.user_says(world.general, world.ada, f"<@{BOT_USER_ID}> long one please")
    event = await next_event(world, 1)
    block = "```python\n" + "".join(f"print({i})  # step {i}\n" for i in range(60)) + "```"
    text = "\n\n".join(f"Part {i}. " + "prose " * 80 + "\n\n" + block for i in range(5))[:6000]
    saved = await answer(adapter, event, text)
    shown = [m.content for m in fake.bot_messages(asked.id)]
    assert len(shown) >= 3 and all(len(part) <= 2000 for part in shown)
    assert join_split(shown) == text
    assert saved == [m.id for m in fake.bot_messages(asked.id)]


async def test_a_429_on_an_edit_still_lands_the_answer(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    asked = fake.user_says(world.general, world.ada, f"<@{BOT_USER_ID}> hi")
    event = await next_event(world, 1)
    fake.rate_limit_next(EDIT, retry_after=0.2, times=2)
    await answer(adapter, event, "The whole answer, in the end.")
    assert [m.content for m in fake.bot_messages(asked.id)] == ["The whole answer, in the end."]
    assert fake.rate_limited


async def test_a_restart_edits_the_stored_messages_in_place(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    asked = fake.user_says(world.general, world.ada, f"<@{BOT_USER_ID}> hi <@&{world.role}>")
    event = await next_event(world, 1)
    stored = event.to_json()  # what the core keeps
    handle = adapter.reply(await adapter.prepare(event), (), _ignore)
    await handle.update("half an ans")
    await adapter.close()  # the process dies
    (first,) = fake.bot_messages(asked.id)
    posts = len(fake.calls_of("POST", "/channels/*/messages"))

    core = Core()
    client = make_client(intents(), guild_ready_timeout=0.05)
    restarted = DiscordAdapter(core, world.settings, places=core, client=client)
    await restarted.start()
    try:
        again = PlatformEvent.from_json(stored)
        prepared = await restarted.prepare(again)
        # No gateway copy of the message now: names come from REST (and the member).
        assert (prepared.author_name, prepared.text) == ("Ada L.", "hi @mathematicians")
        saved = await answer(restarted, again, "Half an answer, whole.", [first.id])
    finally:
        await restarted.close()
    assert [m.content for m in fake.bot_messages(asked.id)] == ["Half an answer, whole."]
    assert saved == [first.id]
    assert len(fake.calls_of("POST", "/channels/*/messages")) == posts  # nothing re-posted
    assert len(fake.threads(world.general)) == 1  # "already has a thread" tolerated


async def test_a_resume_replay_is_queued_once(world: World, adapter: DiscordAdapter) -> None:
    fake = world.fake
    fake.user_says(world.general, world.ada, f"<@{BOT_USER_ID}> once")
    await next_event(world, 1)
    fake.drop()
    await fake.wait_for(lambda: fake.resumes, what="a RESUME")
    assert fake.replay_last() == 1
    fake.user_says(world.general, world.ada, f"<@{BOT_USER_ID}> twice")
    await next_event(world, 2)
    await asyncio.sleep(0.1)
    assert [e.text for e in world.core.events] == ["once", "twice"]
    # The replay reached the adapter with the same event id: the core's ledger drops it.
    assert world.core.duplicates == [world.core.events[0].event_id]
    assert await adapter.ready()


async def test_intent_not_granted_is_one_clear_line(world: World) -> None:
    world.fake.message_content_allowed = False
    bot = DiscordAdapter(
        world.core,
        world.settings,
        places=world.core,
        client=make_client(intents(), guild_ready_timeout=0.05),
    )
    with pytest.raises(ConfigError) as failed:
        await bot.start()
    assert str(failed.value) == INTENT_MISSING
    assert "Message Content Intent" in str(failed.value) and "\n" not in str(failed.value)


async def test_gateway_4014_is_the_same_clear_line(world: World) -> None:
    world.fake.message_content_allowed = False
    world.fake.application_flags = (
        GATEWAY_MESSAGE_CONTENT_LIMITED  # the app says yes, the gateway no
    )
    bot = DiscordAdapter(
        world.core,
        world.settings,
        places=world.core,
        client=make_client(intents(), guild_ready_timeout=0.05),
    )
    with pytest.raises(ConfigError) as failed:
        await bot.start()
    assert str(failed.value) == INTENT_MISSING
    assert not await bot.ready()


async def test_a_rejected_token(world: World) -> None:
    world.fake.valid_tokens = {"another"}
    bot = DiscordAdapter(
        world.core,
        world.settings,
        places=world.core,
        client=make_client(intents(), guild_ready_timeout=0.05),
    )
    with pytest.raises(ConfigError, match="DISCORD_BOT_TOKEN was rejected"):
        await bot.start()


async def test_check_reports_the_bot_the_invite_url_and_the_intent(world: World) -> None:
    lines: list[tuple[str, bool, str]] = []
    await check_discord_bot(world.settings, lambda *line: lines.append(line))
    assert lines == [
        ("discord", True, f"bot owui-bot ({BOT_USER_ID})"),
        (
            "discord invite",
            True,
            f"https://discord.com/oauth2/authorize?client_id={APP_ID}"
            "&scope=bot%20applications.commands&permissions=309237746688",
        ),
        ("discord intent", True, "Message Content intent enabled"),
        (
            "discord shards",
            True,
            "Discord recommends 1 shard; DISCORD_SHARD_COUNT unset (one connection); "
            "1000 of 1000 session starts left (reset in 24 h), 1 at once",
        ),
    ]
    world.fake.message_content_allowed = False
    lines.clear()
    await check_discord_bot(world.settings, lambda *line: lines.append(line))
    assert lines[-2] == ("discord intent", False, INTENT_MISSING)
    assert all(TOKEN not in detail for _, _, detail in lines)


async def test_stop_ends_questions_but_answers_still_land(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    asked = fake.user_says(world.general, world.ada, f"<@{BOT_USER_ID}> before stop")
    event = await next_event(world, 1)
    await adapter.stop()
    assert not await adapter.ready()
    await answer(adapter, event, "Still delivered.")
    assert [m.content for m in fake.bot_messages(asked.id)] == ["Still delivered."]


async def _ignore(ids: Sequence[str]) -> None:
    pass


@pytest.mark.parametrize(
    "refuse",
    [
        pytest.param(lambda fake: fake.fail_next(OPEN_THREAD, 403, 50013), id="missing-permission"),
        pytest.param(lambda fake: fake.cut_next(OPEN_THREAD), id="network-error"),
    ],
)
async def test_a_thread_that_cannot_be_opened_answers_as_a_reply_in_the_channel(
    world: World, adapter: DiscordAdapter, refuse: Callable[[FakeDiscord], None]
) -> None:
    fake = world.fake
    asked = fake.user_says(world.general, world.ada, f"<@{BOT_USER_ID}> hi")
    event = await next_event(world, 1)
    refuse(fake)
    saved = await answer(adapter, event, "Answer without a thread.")
    assert fake.threads(world.general) == [] and asked.thread_id is None
    [shown] = fake.bot_messages(world.general)
    assert (shown.content, shown.reference) == ("Answer without a thread.", asked.id)
    assert shown.mentions == []  # the reply pings no one, the asker included
    assert saved == [shown.id]
    assert world.core.reply_channels == {event.thread: world.general}


async def test_a_restart_finishes_an_unthreaded_answer_in_the_channel(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    asked = fake.user_says(world.general, world.ada, f"<@{BOT_USER_ID}> hi")
    event = await next_event(world, 1)
    fake.cut_next(OPEN_THREAD)
    handle = adapter.reply(await adapter.prepare(event), (), _ignore)
    await handle.update("Half an ans")
    await adapter.close()  # the process dies; the thread could be opened now
    [first] = fake.bot_messages(world.general)

    core = Core(reply_channels=dict(world.core.reply_channels))  # what the store kept
    restarted = DiscordAdapter(
        core,
        world.settings,
        places=core,
        client=make_client(intents(), guild_ready_timeout=0.05),
    )
    await restarted.start()
    try:
        saved = await answer(restarted, event, "Half an answer, whole.", [first.id])
    finally:
        await restarted.close()
    assert fake.threads(world.general) == []  # never tried again
    assert [m.content for m in fake.bot_messages(world.general)] == ["Half an answer, whole."]
    assert saved == [first.id] and first.reference == asked.id


async def test_a_part_a_person_deleted_is_posted_again_where_they_see_it(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    asked = fake.user_says(world.general, world.ada, f"<@{BOT_USER_ID}> hi")
    event = await next_event(world, 1)
    saved: list[str] = []

    async def save(ids: Sequence[str]) -> None:
        saved[:] = ids

    handle = adapter.reply(await adapter.prepare(event), (), save)
    await handle.update("The first words")
    [first] = fake.bot_messages(asked.id)
    fake.delete(first.id)  # within Discord's nonce window: its nonce still answers with it
    await handle.finish("The first words, and the rest.")
    [again] = fake.bot_messages(asked.id)
    assert again.id != first.id and again.content == "The first words, and the rest."
    assert saved == [again.id]
