"""Channel names for folders, links back to threads, and DM-or-channel, against a
local Slack (real slack_sdk client)."""

from __future__ import annotations

import time
from collections.abc import Callable

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.places import Places, thread_link
from tests.fakes.slack_server import WORKSPACE_URL, FakeSlack


def places(fake: FakeSlack, clock: Callable[[], float] = time.monotonic) -> Places:
    return Places(AsyncWebClient(token="xoxb-test", base_url=fake.api_url), clock=clock)


async def test_names_as_people_know_them(fake: FakeSlack) -> None:
    fake.add_channel("C1", "support")
    fake.add_channel("G1", "ops-private", kind="group")
    fake.add_channel("C9", "", kind="mpim")
    names = places(fake)
    assert await names.name("C1", direct=False) == "#support"
    assert await names.name("G1", direct=False) == "#ops-private"
    assert await names.name("D1", direct=False) == "DMs"  # a DM, even unmarked
    assert await names.name("C9", direct=False) == "DMs"  # a group DM
    assert await names.name("C1", direct=True) == "DMs"
    assert await names.name("C1", direct=False) == "#support"
    # Looked up once per channel (cached); a DM is never looked up.
    assert sorted(c.params["channel"] for c in fake.calls_of("conversations.info")) == [
        "C1",
        "C9",
        "G1",
    ]


async def test_a_failed_look_up_gives_the_id_and_is_not_kept(fake: FakeSlack) -> None:
    fake.add_channel("C1", "support")
    names = places(fake)
    fake.fail_next("conversations.info", "missing_scope")
    assert await names.name("C1", direct=False) == "C1"
    assert await names.name("C1", direct=False) == "#support"


async def test_renames_show_at_once_by_event_and_within_the_ttl_without(
    fake: FakeSlack,
) -> None:
    now = [0.0]
    fake.add_channel("C1", "support")
    names = places(fake, clock=lambda: now[0])  # names kept 600 s
    assert await names.name("C1", direct=False) == "#support"
    fake.rename_channel("C1", "help-desk")
    names.renamed("C1", "help-desk")  # the channel_rename event
    assert await names.name("C1", direct=False) == "#help-desk"
    fake.rename_channel("C1", "helpdesk")  # an event that never arrived
    now[0] = 599.0
    assert await names.name("C1", direct=False) == "#help-desk"
    now[0] = 601.0
    assert await names.name("C1", direct=False) == "#helpdesk"


async def test_direct_from_events_then_slack(fake: FakeSlack) -> None:
    fake.add_channel("C9", "", kind="mpim")
    fake.add_channel("C1", "support")
    kinds = places(fake)
    kinds.learn("C5", "mpim")  # a message event said so: no call
    assert await kinds.direct("D1") and await kinds.direct("C5")
    assert fake.count("conversations.info") == 0
    assert await kinds.direct("C9") and not await kinds.direct("C1")
    fake.fail_next("conversations.info", "internal_error")
    assert not await kinds.direct("C404")  # unknown: judged as a channel


async def test_link_opens_the_thread(fake: FakeSlack) -> None:
    client = AsyncWebClient(token="xoxb-test", base_url=fake.api_url)
    thread, _, _ = fake.user_says("C1", "U1", "<@UBOT> hi")
    link = thread_link(WORKSPACE_URL, "C1", thread)
    # The same address Slack's own permalink of the thread's first message has.
    assert link == (await client.chat_getPermalink(channel="C1", message_ts=thread))["permalink"]
    assert link == f"https://fake-team.slack.com/archives/C1/p{thread.replace('.', '')}"
    assert thread_link("", "C1", thread) == ""
