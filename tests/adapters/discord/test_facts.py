"""What the Discord adapter tells the access policy about who asks and where: from
the member object a message carries, a thread's parent, and (for DMs) the user's
membership looked up on the local fake Discord."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.discord.app import DiscordAdapter
from adapters.discord.facts import MEMBERSHIP_TTL, AskerFacts
from bridge.events import ThreadKey
from bridge.policy import AccessPolicy, Asker, Refusal, UserKind, judge
from tests.adapters.discord.discord_world import Core, World, discord_world, next_asker
from tests.fakes.discord_server import BOT_USER_ID, GUILD_FORUM

MENTION = f"<@{BOT_USER_ID}>"
MEMBER = "GET /guilds/{guild_id}/members/{user_id}"
CHANNEL = "GET /channels/{channel_id}"


@pytest.fixture
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    policy = getattr(request, "param", AccessPolicy())
    async with discord_world(Core(policy=policy)) as world:
        yield world


def calls(world: World, key: str) -> int:
    return len([c for c in world.fake.calls if c.key == key])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_guild_message_carries_its_authors_roles(
    world: World, adapter: DiscordAdapter
) -> None:
    world.fake.user_says(world.general, world.ada, f"{MENTION} hi")
    asker = await next_asker(world, 1)
    # @everyone (the guild's id) is one of everyone's roles.
    assert asker == Asker(
        workspace=world.guild,
        channel=world.general,
        user=world.ada,
        kind=UserKind.MEMBER,
        roles=frozenset({world.role, world.guild}),
    )
    assert calls(world, MEMBER) == 0  # the message carried the member: no look-up


async def test_roles_given_later_are_read_from_the_next_message(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    grace = fake.add_user(name="grace")
    fake.add_member(world.guild, grace)
    fake.user_says(world.general, grace, f"{MENTION} one")
    assert (await next_asker(world, 1)).roles == frozenset({world.guild})
    staff = fake.add_role(world.guild, name="staff")  # GUILD_ROLE_CREATE reaches the bot
    fake.set_roles(world.guild, grace, [staff])
    fake.user_says(world.general, grace, f"{MENTION} two")
    assert (await next_asker(world, 2)).roles == frozenset({world.guild, staff})


async def test_a_thread_counts_as_its_parent_channel(world: World, adapter: DiscordAdapter) -> None:
    fake = world.fake
    opened = fake.user_says(world.general, world.ada, f"{MENTION} first")
    await next_asker(world, 1)
    # The bot opens the thread (in the real core: inside the turn).
    await adapter.prepare(world.core.events[0])
    fake.user_says(opened.id, world.ada, "in the thread")
    forum = fake.add_channel(world.guild, "help", type=GUILD_FORUM)
    fake.forum_post(forum, world.ada, "Engines", f"{MENTION} how do engines compute?")
    in_thread, in_post = await next_asker(world, 2), await next_asker(world, 3)
    assert in_thread.channel == world.general
    assert in_post.channel == forum
    assert not in_thread.direct and in_thread.workspace == world.guild


@pytest.mark.parametrize(
    "world", [AccessPolicy(allowed_channels=frozenset({"placeholder"}))], indirect=True
)
async def test_an_uncached_threads_parent_is_looked_up_once(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    # A thread the bot never heard of (no THREAD_CREATE): discord.py has no parent for it.
    thread = fake.add_thread(world.general, "old")
    world.core.threads.add(ThreadKey("discord", world.guild, thread, thread))
    fake.user_says(thread, world.ada, "first")
    fake.user_says(thread, world.ada, "second")
    first, second = await next_asker(world, 1), await next_asker(world, 2)
    assert first.channel == second.channel == world.general
    assert calls(world, CHANNEL) == 1  # shared by both messages, then cached


async def test_without_a_channel_list_an_uncached_threads_parent_is_still_found(
    world: World, adapter: DiscordAdapter
) -> None:
    # The channel rules and the Open WebUI folder follow the parent channel.
    fake = world.fake
    thread = fake.add_thread(world.general, "old")
    world.core.threads.add(ThreadKey("discord", world.guild, thread, thread))
    fake.user_says(thread, world.ada, "hello")
    asker = await next_asker(world, 1)
    assert asker.channel == world.general
    assert world.core.events[0].place == world.general
    assert calls(world, CHANNEL) == 1
    # Where the look-up fails and no channel list depends on it, the thread stands in:
    # the question is still answered.
    other = fake.add_thread(world.general, "older")
    world.core.threads.add(ThreadKey("discord", world.guild, other, other))
    fake.fail_next(CHANNEL, 403, 50001, "Missing Access")
    fake.user_says(other, world.ada, "still there?")
    stand_in = await next_asker(world, 2)
    assert stand_in.channel == other and stand_in.kind is UserKind.MEMBER
    assert world.core.events[1].place == other


@pytest.mark.parametrize(
    "world", [AccessPolicy(allowed_channels=frozenset({"placeholder"}))], indirect=True
)
async def test_an_uncached_thread_whose_parent_cannot_be_found_is_not_admitted(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    thread = fake.add_thread(world.general, "old")
    world.core.threads.add(ThreadKey("discord", world.guild, thread, thread))
    fake.fail_next(CHANNEL, 403, 50001, "Missing Access")
    fake.user_says(thread, world.ada, "hello")
    asker = await next_asker(world, 1)
    assert asker.kind is UserKind.UNKNOWN and asker.channel == ""
    assert judge(world.core.policy, asker) is not None
    assert world.core.events == []
    # With a deny list only, the refusal says why: the user could not be verified.
    denying = AccessPolicy(denied_channels=frozenset({world.general}))
    assert judge(denying, asker) is Refusal.UNVERIFIED


@pytest.mark.parametrize("world", [AccessPolicy(allowed_roles=frozenset({"0"}))], indirect=True)
async def test_a_message_without_a_member_object_has_its_roles_looked_up(
    world: World, adapter: DiscordAdapter
) -> None:
    world.fake.message_members = False
    world.fake.user_says(world.general, world.ada, f"{MENTION} hi")
    asker = await next_asker(world, 1)
    assert asker.roles == frozenset({world.role, world.guild})
    assert asker.roles_known and calls(world, MEMBER) == 1
    world.fake.fail_next(MEMBER, 503, 0, "unavailable")
    world.fake.user_says(world.general, world.ada, f"{MENTION} again")
    again = await next_asker(world, 2)
    assert again.roles == frozenset({world.role, world.guild})  # cached


async def test_a_dm_without_restrictions_looks_nothing_up(
    world: World, adapter: DiscordAdapter
) -> None:
    dm = world.fake.add_dm(world.ada)
    world.fake.user_says(dm, world.ada, "hello")
    asker = await next_asker(world, 1)
    assert asker == Asker(workspace="", channel="", user=world.ada, direct=True)
    assert calls(world, MEMBER) == 0


async def test_a_dm_takes_the_workspace_and_roles_of_an_allowed_guild(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    other = fake.add_guild("Elsewhere")  # after READY: the bot does not know it
    fake.add_member(other, world.ada)
    clock = Clock()
    policy = AccessPolicy(allowed_workspaces=frozenset({world.guild}))
    facts = AskerFacts(adapter.client, policy, clock=clock)

    asker = await facts.of_dm_user(world.ada)
    assert asker == Asker(
        workspace=world.guild,
        channel="",
        user=world.ada,
        roles=frozenset({world.role, world.guild}),
        direct=True,
    )
    assert judge(policy, asker) is None
    assert calls(world, MEMBER) == 1
    await facts.of_dm_user(world.ada)
    assert calls(world, MEMBER) == 1  # cached
    clock.now += MEMBERSHIP_TTL + 1
    fake.remove_member(world.guild, world.ada)
    gone = await facts.of_dm_user(world.ada)
    assert calls(world, MEMBER) == 2  # expired, asked again: 404 Unknown Member
    assert gone == Asker(workspace="", channel="", user=world.ada, direct=True)
    assert judge(policy, gone) is Refusal.WORKSPACE  # silence


async def test_a_dm_with_a_role_list_finds_the_guild_that_has_the_role(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    grace = fake.add_user(name="grace")
    fake.add_member(world.guild, grace)  # a member, without the role
    policy = AccessPolicy(allowed_roles=frozenset({world.role}))
    facts = AskerFacts(adapter.client, policy)
    stranger = fake.add_user(name="stranger")
    ada, grace_asker = await facts.of_dm_user(world.ada), await facts.of_dm_user(grace)
    assert ada is not None and judge(policy, ada) is None
    assert grace_asker is not None and grace_asker.workspace == world.guild
    assert judge(policy, grace_asker) is Refusal.USER  # a notice, not silence
    nowhere = Asker(workspace="", channel="", user=stranger, direct=True)
    assert await facts.of_dm_user(stranger) == nowhere
    assert judge(policy, nowhere) is Refusal.USER
    # Listed users need no look-up (no workspace list to satisfy).
    lists = AccessPolicy(allowed_roles=policy.allowed_roles, allowed_users=frozenset({"77"}))
    listed = AskerFacts(adapter.client, lists)
    before = calls(world, MEMBER)
    assert await listed.of_dm_user("77") == Asker(workspace="", channel="", user="77", direct=True)
    assert calls(world, MEMBER) == before


async def test_a_failed_dm_look_up_never_admits(world: World, adapter: DiscordAdapter) -> None:
    fake = world.fake
    policy = AccessPolicy(allowed_workspaces=frozenset({world.guild}))
    facts = AskerFacts(adapter.client, policy)
    fake.fail_next(MEMBER, 403, 50001, "Missing Access")
    failed = await facts.of_dm_user(world.ada)
    assert failed is not None and failed.kind is UserKind.UNKNOWN and not failed.roles_known
    assert judge(policy, failed) is Refusal.UNVERIFIED
    # With DMs off the refusal says so, not "try again".
    no_dms = AccessPolicy(allowed_workspaces=policy.allowed_workspaces, allow_dms=False)
    fake.fail_next(MEMBER, 403, 50001, "Missing Access")
    off = await AskerFacts(adapter.client, no_dms).of_dm_user(world.ada)
    assert off is not None and judge(no_dms, off) is Refusal.DIRECT
    # A failure is not remembered: the next look-up asks again and admits.
    ok = await facts.of_dm_user(world.ada)
    assert ok is not None and judge(policy, ok) is None
    # A policy that would pass an unknown user gets no asker at all: no answer.
    lax = AccessPolicy(
        allowed_workspaces=policy.allowed_workspaces, allow_guests=True, allow_external=True
    )
    fake.fail_next(MEMBER, 403, 50001, "Missing Access")
    assert await AskerFacts(adapter.client, lax).of_dm_user(world.ada) is None


async def test_two_dms_at_once_share_one_look_up(world: World, adapter: DiscordAdapter) -> None:
    fake = world.fake
    fake.delay(MEMBER, 0.2)
    facts = AskerFacts(adapter.client, AccessPolicy(allowed_workspaces=frozenset({world.guild})))
    first, second = await asyncio.gather(facts.of_dm_user(world.ada), facts.of_dm_user(world.ada))
    assert first == second and first is not None and first.workspace == world.guild
    assert calls(world, MEMBER) == 1
