"""What the adapter finds out about an asker, from a local Slack: guests, users of
other organisations, user groups, failed look-ups, and what is cached."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.facts import Facts
from adapters.slack.inbound import SlackMessage, parse
from bridge.policy import AccessPolicy, Asker, UserKind
from tests.fakes.slack_server import TEAM_ID, FakeSlack

STRICT = AccessPolicy()  # no guests, no external users: the kind matters


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def facts(fake: FakeSlack, **kw: Any) -> Facts:
    # No retries: a failure is seen at once, as with Slack refusing.
    client = AsyncWebClient(token="xoxb-test", base_url=fake.api_url, retry_handlers=[])
    return Facts(client, **kw)


def said(fake: FakeSlack, user: str, channel: str = "C1", **kw: Any) -> SlackMessage:
    """The message as the adapter parses it from what Slack delivers."""
    _, body, _ = fake.user_says(channel, user, "<@UBOT> hi", **kw)
    message = parse(body)
    assert message is not None
    return message


@pytest.mark.parametrize(
    ("flags", "kind"),
    [
        ({}, UserKind.MEMBER),
        ({"is_restricted": True}, UserKind.GUEST),  # multi-channel guest
        ({"is_ultra_restricted": True}, UserKind.GUEST),  # single-channel guest
        ({"team_id": "T9"}, UserKind.EXTERNAL),  # Slack Connect
        ({"team_id": "T9", "is_restricted": True}, UserKind.EXTERNAL),
    ],
)
async def test_kind_from_users_info(fake: FakeSlack, flags: dict[str, Any], kind: UserKind) -> None:
    fake.add_user("U1", "Ada", **flags)
    asker = await facts(fake).asker(said(fake, "U1"), STRICT)
    assert asker == Asker(workspace=TEAM_ID, channel="C1", user="U1", kind=kind)
    assert fake.count("users.info") == 1


async def test_the_events_team_tells_an_external_user_without_a_call(fake: FakeSlack) -> None:
    fake.add_user("U9", "Eve", team_id="T9")
    found = facts(fake)
    assert await found.kind(said(fake, "U9", user_team="T9"), STRICT) is UserKind.EXTERNAL
    assert fake.count("users.info") == 0
    # At home by the event, but guests matter: Slack is asked.
    fake.add_user("UG", "Gus", is_restricted=True)
    assert await found.kind(said(fake, "UG", user_team=TEAM_ID), STRICT) is UserKind.GUEST
    assert fake.count("users.info") == 1
    # At home by the event and guests allowed: nothing left to ask.
    relaxed = AccessPolicy(allow_guests=True)
    assert await found.kind(said(fake, "UX", user_team=TEAM_ID), relaxed) is UserKind.MEMBER
    assert fake.count("users.info") == 1


async def test_enterprise_grid_teams_of_one_org_are_not_external(fake: FakeSlack) -> None:
    fake.add_user("U2", "Kim", team_id="T2")["enterprise_user"] = {"enterprise_id": "E1"}
    fake.add_user("U3", "Lee", team_id="T3")["enterprise_user"] = {"enterprise_id": "E2"}
    found = facts(fake)
    for user, kind in (("U2", UserKind.MEMBER), ("U3", UserKind.EXTERNAL)):
        _, body, _ = fake.user_says("C1", user, "hi", user_team=user.replace("U", "T"))
        message = parse(body | {"enterprise_id": "E1"})
        assert message is not None
        assert await found.kind(message, STRICT) is kind
    assert fake.count("users.info") == 2  # another team on a Grid: Slack is asked


async def test_a_failed_look_up_is_unknown_and_not_cached(fake: FakeSlack) -> None:
    found = facts(fake)
    asker = await found.asker(said(fake, "U404"), STRICT)  # user_not_found
    assert asker.kind is UserKind.UNKNOWN
    fake.add_user("U404", "Late")
    fake.fail_next("users.info", "internal_error", status=500)
    assert (await found.asker(said(fake, "U404"), STRICT)).kind is UserKind.UNKNOWN
    assert (await found.asker(said(fake, "U404"), STRICT)).kind is UserKind.MEMBER
    assert fake.count("users.info") == 3
    assert await found.name("U405") == "U405"  # a name falls back to the id


async def test_a_slow_look_up_is_unknown_then_kept_for_the_next_message(fake: FakeSlack) -> None:
    fake.add_user("U1", "Ada", is_restricted=True)
    fake.delay("users.info", 0.5)
    found = facts(fake, timeout=0.1)
    assert (await found.asker(said(fake, "U1"), STRICT)).kind is UserKind.UNKNOWN
    await fake.wait_for(lambda: found.known("U1") is not None, what="the look-up to finish")
    assert (await found.asker(said(fake, "U1"), STRICT)).kind is UserKind.GUEST
    assert fake.count("users.info") == 1


async def test_facts_are_cached_for_the_ttl_and_shared(fake: FakeSlack) -> None:
    fake.add_user("U1", "Ada")
    clock = Clock()
    found = facts(fake, ttl=600, clock=clock)
    message = said(fake, "U1")
    kinds = await asyncio.gather(*(found.kind(message, STRICT) for _ in range(5)))
    assert kinds == [UserKind.MEMBER] * 5 and await found.name("U1") == "Ada"
    assert fake.count("users.info") == 1  # one call for everyone asking at once
    fake.users["U1"]["is_restricted"] = True  # made a guest
    clock.now += 599
    assert await found.kind(message, STRICT) is UserKind.MEMBER
    clock.now += 2
    assert await found.kind(message, STRICT) is UserKind.GUEST
    assert fake.count("users.info") == 2


async def test_only_what_the_policy_needs_is_looked_up(fake: FakeSlack) -> None:
    fake.add_user("U1", "Ada", is_restricted=True)
    found = facts(fake)
    open_door = AccessPolicy(allow_guests=True, allow_external=True)
    assert (await found.asker(said(fake, "U1"), open_door)).kind is UserKind.MEMBER
    # Refused for where or who they are, whatever their kind: no call either.
    for policy in (
        AccessPolicy(denied_users=frozenset({"U1"})),
        AccessPolicy(allowed_channels=frozenset({"C2"})),
        AccessPolicy(allow_dms=False),
    ):
        channel = "D1" if not policy.allow_dms else "C1"
        await found.asker(said(fake, "U1", channel=channel), policy)
    assert fake.count("users.info") == 0


async def test_where_the_asker_is(fake: FakeSlack) -> None:
    found = facts(fake)
    open_door = AccessPolicy(allow_guests=True, allow_external=True)
    thread, _, _ = fake.user_says("C1", "U1", "<@UBOT> start")
    in_thread = await found.asker(said(fake, "U1", thread_ts=thread), open_door)
    direct = await found.asker(said(fake, "U1", channel="D1"), open_door)
    assert (in_thread.channel, in_thread.direct) == ("C1", False)  # a thread is its channel
    assert (direct.channel, direct.direct, direct.workspace) == ("", True, TEAM_ID)


async def test_user_groups(fake: FakeSlack) -> None:
    fake.scopes.append("usergroups:read")
    fake.add_usergroup("SOPS", ["U1", "U2"])
    fake.add_usergroup("SDEV", ["U2"])
    policy = AccessPolicy(
        allowed_roles=frozenset({"SOPS", "SDEV"}),
        allowed_users=frozenset({"U7"}),
        allow_guests=True,
        allow_external=True,
    )
    found = facts(fake)
    askers = [await found.asker(said(fake, u), policy) for u in ("U1", "U2", "U3", "U7")]
    assert [(a.roles, a.roles_known) for a in askers] == [
        (frozenset({"SOPS"}), True),
        (frozenset({"SOPS", "SDEV"}), True),
        (frozenset(), True),
        (frozenset(), True),  # allowed by name: the groups are not needed
    ]
    assert fake.count("usergroups.users.list") == 2  # once per group, then cached


async def test_user_groups_that_cannot_be_read_are_unknown(fake: FakeSlack) -> None:
    fake.add_usergroup("SOPS", ["U1"])
    policy = AccessPolicy(allowed_roles=frozenset({"SOPS"}), allow_guests=True, allow_external=True)
    found = facts(fake)
    asker = await found.asker(said(fake, "U1"), policy)  # the token lacks usergroups:read
    assert (asker.roles, asker.roles_known) == (frozenset(), False)
    fake.scopes.append("usergroups:read")
    asker = await found.asker(said(fake, "U1"), policy)  # the failure was not cached
    assert (asker.roles, asker.roles_known) == (frozenset({"SOPS"}), True)
