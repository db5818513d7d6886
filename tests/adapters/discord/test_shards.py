"""Sharding (``DISCORD_SHARD_COUNT`` / ``DISCORD_SHARD_IDS``) on the real discord.py
client against the local fake Discord, which sends each shard's connection the
events of its guilds only and DMs to shard 0 (as Discord does)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import pytest

from adapters.check import check_discord_bot
from adapters.discord.app import DiscordAdapter, intents, make_client
from adapters.discord.settings import DiscordSettings
from adapters.web import WebServer
from bridge.config import ConfigError, read_settings
from bridge.events import ThreadKey
from bridge.policy import AccessPolicy
from tests.adapters.discord.discord_world import Core, World, discord_world, next_event
from tests.adapters.discord.test_app import answer
from tests.fakes.discord_server import BOT_USER_ID


@dataclass
class Guilds:
    """A guild whose events go to shard 0 of 2, one whose go to shard 1, Ada in both."""

    world: World
    on_0: str  # #general of the first
    on_1: str  # #general of the second
    guild_0: str
    guild_1: str


@pytest.fixture
async def guilds() -> AsyncIterator[Guilds]:
    async with discord_world() as world:
        fake = world.fake
        guild_0 = fake.add_guild("Zero", on_shard=(0, 2))
        guild_1 = fake.add_guild("One", on_shard=(1, 2))
        for guild in (guild_0, guild_1):
            fake.add_member(guild, world.ada)
        on_0 = fake.add_channel(guild_0, "general")
        on_1 = fake.add_channel(guild_1, "general")
        yield Guilds(world, on_0, on_1, guild_0, guild_1)


def sharded(world: World, *, count: int, ids: list[int] | None = None) -> DiscordSettings:
    return world.settings.model_copy(update={"shard_count": count, "shard_ids": ids})


@asynccontextmanager
async def running(
    settings: DiscordSettings, core: Core, web: WebServer | None = None
) -> AsyncIterator[DiscordAdapter]:
    client = make_client(
        intents(),
        guild_ready_timeout=0.05,
        shard_count=settings.shard_count,
        shard_ids=settings.shard_ids,
    )
    bot = DiscordAdapter(core, settings, places=core, client=client, web_server=web)
    await bot.start()
    try:
        yield bot
    finally:
        await bot.close()


def thread_of(world: World, question_id: str) -> list[str]:
    """What the thread a mention opened shows from the bot."""
    return [m.content for m in world.fake.bot_messages(question_id)]


async def test_one_process_holding_both_shards_answers_in_guilds_on_each(
    guilds: Guilds,
) -> None:
    world, fake = guilds.world, guilds.world.fake
    async with running(sharded(world, count=2), world.core) as bot:
        assert sorted(i["shard"][0] for i in fake.identifies) == [0, 1]
        first = fake.user_says(guilds.on_0, world.ada, f"<@{BOT_USER_ID}> one?")
        second = fake.user_says(guilds.on_1, world.ada, f"<@{BOT_USER_ID}> two?")
        events = [await next_event(world, 1), await next_event(world, 2)]
        assert {e.thread for e in events} == {
            ThreadKey("discord", guilds.guild_0, first.id, first.id),
            ThreadKey("discord", guilds.guild_1, second.id, second.id),
        }
        for event in events:
            await answer(bot, event, f"Answer to {event.text}")
    assert thread_of(world, first.id) == ["Answer to one?"]
    assert thread_of(world, second.id) == ["Answer to two?"]


async def test_two_instances_each_answer_their_shard_once_and_dms_go_to_shard_0(
    guilds: Guilds,
) -> None:
    world, fake = guilds.world, guilds.world.fake
    dm = fake.add_dm(world.ada)
    zero, one = Core(), Core()
    async with (
        running(sharded(world, count=2, ids=[0]), zero) as bot_0,
        running(sharded(world, count=2, ids=[1]), one) as bot_1,
    ):
        first = fake.user_says(guilds.on_0, world.ada, f"<@{BOT_USER_ID}> one?")
        second = fake.user_says(guilds.on_1, world.ada, f"<@{BOT_USER_ID}> two?")
        fake.user_says(dm, world.ada, "in a DM?")
        # Each connection's events come in order: anything for the other shard would
        # have come before these.
        last_0 = fake.user_says(guilds.on_0, world.ada, f"<@{BOT_USER_ID}> last zero")
        last_1 = fake.user_says(guilds.on_1, world.ada, f"<@{BOT_USER_ID}> last one")
        await fake.wait_for(lambda: len(zero.events) == 3 and len(one.events) == 2)
        assert [e.text for e in zero.events] == ["one?", "in a DM?", "last zero"]
        assert [e.text for e in one.events] == ["two?", "last one"]
        for bot, core in ((bot_0, zero), (bot_1, one)):
            for event in core.events:
                await answer(bot, event, f"Answer to {event.text}")
    assert thread_of(world, first.id) == ["Answer to one?"]
    assert thread_of(world, second.id) == ["Answer to two?"]
    assert thread_of(world, last_0.id) == ["Answer to last zero"]
    assert thread_of(world, last_1.id) == ["Answer to last one"]
    assert [m.content for m in fake.bot_messages(dm)] == ["Answer to in a DM?"]


async def test_a_turn_taken_over_from_another_shard_is_prepared_as_its_holder_would(
    guilds: Guilds,
) -> None:
    """A process that took over a turn of a server on a shard it does not hold (its
    holder died) has nothing of that server from its gateway: it names the asker, the
    server and the channel as the holder does, for the chat and its Open WebUI folder."""
    world, fake = guilds.world, guilds.world.fake
    fake.add_member(guilds.guild_0, world.ada, nick="Ada Z.")  # her name on that server
    zero, one = Core(), Core()
    async with (
        running(sharded(world, count=2, ids=[0]), zero) as bot_0,
        running(sharded(world, count=2, ids=[1]), one) as bot_1,
    ):
        question = fake.user_says(guilds.on_0, world.ada, f"<@{BOT_USER_ID}> one?")
        await fake.wait_for(lambda: len(zero.events) == 1, what="the question on shard 0")
        [event] = zero.events
        by_holder = await bot_0.prepare(event)
        follow_up = fake.user_says(question.id, world.ada, "and then?")
        await fake.wait_for(lambda: len(zero.events) == 2, what="the follow-up on shard 0")
        # Stored by the holder, run by the other process (which never saw it delivered).
        by_other = [await bot_1.prepare(e) for e in zero.events]
        # An event stored without its place (its thread's parent is looked up too).
        unplaced = await bot_1.prepare(replace(zero.events[1], place=""))
    assert [e.message_id for e in by_other] == [question.id, follow_up.id]
    for prepared in (by_holder, *by_other, unplaced):
        assert (prepared.author_name, prepared.place_name, prepared.link) == (
            "Ada Z.",
            "Zero \u203a #general",
            f"https://discord.com/channels/{guilds.guild_0}/{question.id}",
        )
    assert by_other[1].text == "and then?"
    assert one.events == []  # shard 1's process heard nothing of shard 0's server


async def test_readyz_names_a_shard_whose_connection_is_down(guilds: Guilds) -> None:
    world, fake = guilds.world, guilds.world.fake
    web = WebServer(cache_seconds=0)
    async with running(sharded(world, count=2), world.core, web):
        assert await web.readiness() == {
            "discord": True,
            "discord shard 0": True,
            "discord shard 1": True,
        }
        fake.gateway_open = False  # shard 1 cannot come back for now
        fake.drop(shard=1)
        down = {"discord": False, "discord shard 0": True, "discord shard 1": False}
        readiness: dict[str, bool] = {}

        async def check() -> bool:
            readiness.update(await web.readiness())
            return readiness == down

        await _until(check, "shard 1 reported down")
        fake.gateway_open = True
        # discord.py backs off, then waits 5 s before a later shard's IDENTIFY.
        await _until(lambda: _all_ready(web), "shard 1 back", timeout=45)
        # Shard 1's guild is answered again.
        fake.user_says(guilds.on_1, world.ada, f"<@{BOT_USER_ID}> back?")
        assert (await next_event(world, 1)).text == "back?"


async def _all_ready(web: WebServer) -> bool:
    return all((await web.readiness()).values())


async def _until(check: Callable[[], Awaitable[bool]], what: str, *, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_check_prints_the_recommended_count_and_warns_below_it(guilds: Guilds) -> None:
    world = guilds.world
    lines: list[tuple[str, bool, str]] = []
    world.fake.recommended_shards = 3
    await check_discord_bot(sharded(world, count=2, ids=[1]), lambda *line: lines.append(line))
    (shards,) = [line for line in lines if line[0] == "discord shards"]
    assert shards[1] is True
    assert shards[2] == (
        "warning: below the recommendation, set DISCORD_SHARD_COUNT=3; "
        "Discord recommends 3 shards; DISCORD_SHARD_COUNT=2, this process holds shard 1; "
        "1000 of 1000 session starts left (reset in 24 h), 1 at once"
    )
    lines.clear()
    await check_discord_bot(sharded(world, count=4), lambda *line: lines.append(line))
    (shards,) = [line for line in lines if line[0] == "discord shards"]
    assert shards[2].startswith(
        "Discord recommends 3 shards; DISCORD_SHARD_COUNT=4, this process holds shards 0,1,2,3;"
    )


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"DISCORD_SHARD_IDS": "0"}, "DISCORD_SHARD_IDS: Value error, needs DISCORD_SHARD_COUNT"),
        (
            {"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "0,2"},
            "DISCORD_SHARD_IDS: Value error, with DISCORD_SHARD_COUNT=2 the shards are 0 to 1; "
            "not 2",
        ),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "1,1"}, "names a shard twice"),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "one"}, "separated by commas"),
        ({"DISCORD_SHARD_COUNT": "0"}, "DISCORD_SHARD_COUNT: Input should be greater than"),
    ],
)
def test_bad_shard_settings_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], problem: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="invalid configuration") as refused:
        read_settings(DiscordSettings)
    assert problem in str(refused.value)


def test_shard_settings_from_the_environment_and_the_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert read_settings(DiscordSettings).held_shards is None  # unset: one connection
    assert read_settings(DiscordSettings, {"DISCORD_SHARD_COUNT": 3}).held_shards == [0, 1, 2]
    file = {"DISCORD_SHARD_COUNT": 4, "DISCORD_SHARD_IDS": [3, 1]}
    assert read_settings(DiscordSettings, file).held_shards == [1, 3]
    monkeypatch.setenv("DISCORD_SHARD_COUNT", "4")
    monkeypatch.setenv("DISCORD_SHARD_IDS", "2, 0")
    assert read_settings(DiscordSettings).held_shards == [0, 2]


async def test_a_dm_is_judged_only_against_the_servers_on_the_shards_held(
    guilds: Guilds,
) -> None:
    """What the README says of separate processes: the shard-0 holder does not know the
    servers on other shards, so a role there does not admit a DM."""
    world, fake = guilds.world, guilds.world.fake
    staff = fake.add_role(guilds.guild_1, name="staff")
    fake.set_roles(guilds.guild_1, world.ada, [staff])
    dm = fake.add_dm(world.ada)
    policy = AccessPolicy(allowed_roles=frozenset({staff}))
    alone, both = Core(policy=policy), Core(policy=policy)
    async with running(sharded(world, count=2, ids=[0]), alone):
        fake.user_says(dm, world.ada, "shard 0 only?")
        await fake.wait_for(lambda: alone.refused, what="the refusal")
    assert [e.text for e, _ in alone.refused] == ["shard 0 only?"]
    async with running(sharded(world, count=2), both):
        fake.user_says(dm, world.ada, "all shards?")
        await fake.wait_for(lambda: both.events, what="the question")
    assert [e.text for e in both.events] == ["all shards?"] and not both.refused


async def test_stop_closes_every_shard_and_takes_no_more_questions(guilds: Guilds) -> None:
    world, fake = guilds.world, guilds.world.fake
    async with running(sharded(world, count=2), world.core) as bot:
        assert sorted(s[0] for s in fake.connected_shards if s) == [0, 1]
        await bot.stop()
        await fake.wait_for(lambda: not fake.connected_shards, what="every shard closed")
        fake.user_says(guilds.on_1, world.ada, f"<@{BOT_USER_ID}> after stop?")
        fake.user_says(guilds.on_0, world.ada, f"<@{BOT_USER_ID}> after stop?")
        assert not fake.connected_shards and not world.core.events
