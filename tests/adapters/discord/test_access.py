"""What a person sees when the bridge does not take their question on Discord: a
reply with the notice (or nothing), no thread opened, nothing queued. The core is
the stand-in judging with the real admission rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.discord.app import DiscordAdapter
from adapters.discord.commands import NEW_DMS_OFF, NEW_REFUSED
from bridge.admission import Admission
from bridge.events import PlatformEvent, ThreadKey
from bridge.policy import AccessPolicy, Asker, Limits, Refusal
from tests.adapters.discord.discord_world import Core, World, discord_world, next_event
from tests.fakes.discord_server import BOT_USER_ID, EPHEMERAL, Message

MENTION = f"<@{BOT_USER_ID}>"
OPEN_THREAD = "POST /channels/{channel_id}/messages/{message_id}/threads"
SEND = "POST /channels/{channel_id}/messages"
DENIED = "99"  # a user id the policy of most tests denies


def notice(refusal: Refusal, *, direct: bool = False) -> str:
    """The notice the real admission rules give for ``refusal`` (the first time)."""
    policy = {
        Refusal.DENIED_USER: AccessPolicy(denied_users=frozenset({"u"})),
        Refusal.DIRECT: AccessPolicy(allow_dms=False),
    }.get(refusal, AccessPolicy())
    key = ThreadKey("discord", "", "c", "c")
    event = PlatformEvent("e", key, "m", "u", "", "")
    who = Asker(workspace="", channel="c", user="u", direct=direct)
    verdict = Admission(policy, Limits()).check(event, who)
    assert verdict.refusal is refusal and verdict.notice is not None
    return verdict.notice


@pytest.fixture
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    policy = getattr(request, "param", AccessPolicy(denied_users=frozenset({DENIED})))
    async with discord_world(Core(policy=policy)) as world:
        world.fake.add_user(DENIED, name="mallory")
        world.fake.add_member(world.guild, DENIED)
        yield world


async def replies(world: World, message: Message, count: int = 1) -> list[str]:
    """The bot's replies to ``message`` once there are ``count``, after a moment more."""
    fake = world.fake
    await fake.wait_for(lambda: len(fake.replies_to(message.id)) >= count, what="a reply")
    await asyncio.sleep(0.1)
    return [m.content for m in fake.replies_to(message.id)]


async def test_a_denied_user_gets_one_notice_and_no_thread(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    asked = fake.user_says(world.general, DENIED, f"{MENTION} let me in")
    assert await replies(world, asked) == [notice(Refusal.DENIED_USER)]
    [shown] = fake.replies_to(asked.id)
    assert shown.channel_id == world.general  # a reply under the question, in the channel
    assert fake.pings(world.general) == []  # the author is not pinged by the reply
    assert shown.allowed_mentions == [{"parse": [], "replied_user": False}]
    again = fake.user_says(world.general, DENIED, f"{MENTION} please")
    await fake.wait_for(lambda: len(world.core.refused) == 2, what="the second refusal")
    await asyncio.sleep(0.1)
    assert fake.replies_to(again.id) == []  # once per person per hour
    assert fake.calls_of("POST", OPEN_THREAD) == [] and fake.threads() == []
    assert world.core.events == []


async def test_each_message_in_a_thread_is_judged_by_its_author(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    opened = fake.user_says(world.general, world.ada, f"{MENTION} first")
    await adapter.prepare(await next_event(world, 1))  # the turn opens the thread
    intruder = fake.user_says(opened.id, DENIED, "and me?")
    assert await replies(world, intruder) == [notice(Refusal.DENIED_USER)]
    assert fake.replies_to(intruder.id)[0].channel_id == opened.id  # in the thread
    fake.user_says(opened.id, world.ada, "second")
    second = await next_event(world, 2)
    assert [e.text for e in world.core.events] == ["first", "second"]
    assert second.thread == world.core.events[0].thread


async def test_a_bare_mention_gets_the_hint_and_opens_no_thread(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    asked = fake.user_says(world.general, world.ada, MENTION)
    assert await replies(world, asked) == [notice(Refusal.EMPTY)]
    assert fake.threads() == [] and world.core.events == []


async def test_a_failed_notice_does_not_stop_the_listener(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    fake.fail_next(SEND, 403, 50013, "Missing Permissions")
    refused = fake.user_says(world.general, DENIED, f"{MENTION} hi")
    sends = f"/channels/{world.general}/messages"
    await fake.wait_for(lambda: fake.calls_of("POST", sends), what="the notice tried")
    assert fake.replies_to(refused.id) == []  # Discord said no
    fake.user_says(world.general, world.ada, f"{MENTION} still there?")
    assert (await next_event(world, 1)).text == "still there?"
    assert await adapter.ready()


@pytest.mark.parametrize("world", [AccessPolicy(allow_dms=False)], indirect=True)
async def test_dms_off_a_dm_gets_the_notice_and_new_says_so(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    dm = fake.add_dm(world.ada)
    asked = fake.user_says(dm, world.ada, "hello")
    assert await replies(world, asked) == [notice(Refusal.DIRECT, direct=True)]
    fake.interaction(world.ada, "new", dm)
    await fake.wait_for(lambda: fake.interaction_said(), what="the /new response")
    [response] = fake.interaction_responses
    assert fake.interaction_said() == [NEW_DMS_OFF]
    assert response.data["flags"] & EPHEMERAL
    assert world.core.started_over == [] and world.core.events == []


@pytest.mark.parametrize(
    "world", [AccessPolicy(allowed_workspaces=frozenset({"placeholder"}))], indirect=True
)
async def test_a_guild_not_served_gets_silence(world: World, adapter: DiscordAdapter) -> None:
    fake = world.fake
    fake.user_says(world.general, world.ada, f"{MENTION} anyone?")
    dm = fake.add_dm(world.ada)
    fake.user_says(dm, world.ada, "hello?")
    await fake.wait_for(lambda: len(world.core.refused) == 2, what="two refusals")
    await asyncio.sleep(0.2)
    assert [reason for _, reason in world.core.refused] == [Refusal.WORKSPACE.value] * 2
    assert fake.bot_messages(world.general) == fake.bot_messages(dm) == []
    fake.interaction(world.ada, "new", dm)  # an interaction must be answered: briefly
    await fake.wait_for(lambda: fake.interaction_said(), what="the /new response")
    assert fake.interaction_said() == [NEW_REFUSED]
    assert world.core.started_over == []
