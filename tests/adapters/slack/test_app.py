"""The adapter around the replies: queueing without look-ups, prepare, readiness."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from adapters.slack.app import SlackAdapter, make_client
from adapters.slack.settings import SlackSettings
from adapters.web import WebServer
from bridge.config import ConfigError
from bridge.events import ContextMessage, PlatformEvent, ThreadKey, order_key
from bridge.reply import Platform
from tests.fakes.slack_server import TEAM_ID, FakeSlack

SECRET = "signing-secret"


class FakeCore:
    """The core as the adapter sees it; storing an event takes a moment, as in SQLite."""

    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        self.platforms: list[Platform] = []
        self.events: list[PlatformEvent] = []
        self.threads: set[ThreadKey] = set()
        self.lookups_before_submit: list[int] = []

    def register(self, platform: Platform) -> None:
        self.platforms.append(platform)

    async def knows_thread(self, key: ThreadKey) -> bool:
        return key in self.threads

    async def submit(self, event: PlatformEvent) -> object:
        self.lookups_before_submit.append(
            self.fake.count("users.info") + self.fake.count("conversations.replies")
        )
        await asyncio.sleep(0.05)
        self.threads.add(event.thread)
        self.events.append(event)
        return None


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(("SLACK_", "BRIDGE_")):
            monkeypatch.delenv(name)


def settings(fake: FakeSlack, **overrides: Any) -> SlackSettings:
    values: dict[str, Any] = {
        "bot_token": "xoxb-test",
        "signing_secret": SECRET,
        "api_url": fake.api_url,
        "http_host": "127.0.0.1",
        "http_port": 0,
        **overrides,
    }
    return SlackSettings(**values)


@pytest.fixture
async def adapter(fake: FakeSlack, clean_env: None) -> AsyncIterator[tuple[SlackAdapter, FakeCore]]:
    core = FakeCore(fake)
    adapter = SlackAdapter(core, settings(fake))
    await adapter.start()
    yield adapter, core
    await adapter.stop()


async def test_registers_itself(adapter: tuple[SlackAdapter, FakeCore]) -> None:
    slack, core = adapter
    assert core.platforms == [slack] and slack.name == "slack"


async def test_events_are_queued_raw_in_delivery_order(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, core = adapter
    url = f"http://127.0.0.1:{slack.http_port}/slack/events"
    fake.add_user("U1", "Ada")
    first, _, mention = fake.user_says("C1", "U1", "<@UBOT> what is &lt;x&gt;?")
    # A reply in the new thread, without a mention, right behind the question that opened it.
    second, follow_up, _ = fake.user_says("C1", "U1", "and <@U1>?", thread_ts=first)
    assert mention is not None
    assert (await fake.post_event(url, mention, SECRET))[0] == 200
    assert (await fake.post_event(url, follow_up, SECRET))[0] == 200
    await fake.wait_for(lambda: len(core.events) == 2, what="both questions queued")

    assert [(e.message_id, e.order, e.text, e.author_name) for e in core.events] == [
        (first, order_key(first), "what is &lt;x&gt;?", ""),
        (second, order_key(second), "and <@U1>?", ""),
    ]
    assert core.events[0].event_id == f"C1:{first}"
    assert core.lookups_before_submit == [0, 0]  # no Slack look-up before queueing


async def test_prepare_looks_up_names_and_the_thread(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, _ = adapter
    fake.add_user("U1", "Ada")
    fake.add_user("U2", "Bob")
    parent, _, _ = fake.user_says("C1", "U2", "our deploy failed")
    await slack.client.chat_postMessage(channel="C1", thread_ts=parent, text="an older answer")
    asked, _, _ = fake.user_says("C1", "U1", "<@UBOT> ask <@U2> &amp; me", thread_ts=parent)
    event = PlatformEvent(
        event_id=f"C1:{asked}",
        thread=ThreadKey("slack", TEAM_ID, "C1", parent),
        message_id=asked,
        author_id="U1",
        author_name="",
        text="ask <@U2> &amp; me",
        order=order_key(asked),
        needs_context=True,
    )
    prepared = await slack.prepare(event)
    assert (prepared.author_name, prepared.text) == ("Ada", "ask @Bob & me")
    assert prepared.context == (
        ContextMessage("Bob", "our deploy failed"),
        ContextMessage("assistant", "an older answer", from_bot=True),
    )
    assert await slack.prepare(prepared) == prepared  # prepared once is prepared


async def test_failed_look_ups_degrade_to_ids(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, _ = adapter
    parent, _, _ = fake.user_says("C1", "U404", "<@UBOT> hello <@U405>")
    fake.fail_next("conversations.replies", "internal_error")
    event = PlatformEvent(
        event_id="e",
        thread=ThreadKey("slack", TEAM_ID, "C1", parent),
        message_id=parent,
        author_id="U404",
        author_name="",
        text="hello <@U405>",
        needs_context=True,
    )
    prepared = await slack.prepare(event)
    assert (prepared.author_name, prepared.text, prepared.context) == ("U404", "hello @U405", ())


async def test_stream_goes_to_the_askers_own_team(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, _ = adapter
    fake.add_user("U9", "Guest")["team_id"] = "T9"  # a Slack Connect user
    parent, _, _ = fake.user_says("C1", "U9", "<@UBOT> hi")
    event = PlatformEvent(
        event_id="e",
        thread=ThreadKey("slack", TEAM_ID, "C1", parent),
        message_id=parent,
        author_id="U9",
        author_name="",
        text="hi",
    )
    saved: list[Sequence[str]] = []

    async def save(ids: Sequence[str]) -> None:
        saved.append(ids)

    reply = slack.reply(await slack.prepare(event), (), save)
    assert await reply.update("hello")
    await reply.finish("hello there")
    (start,) = fake.calls_of("chat.startStream")
    assert (start.params["recipient_user_id"], start.params["recipient_team_id"]) == ("U9", "T9")
    assert saved == [[fake.bot_replies("C1", parent)[0].ts]]


async def test_readiness_check(fake: FakeSlack, clean_env: None) -> None:
    server = WebServer(cache_seconds=0)
    SlackAdapter(FakeCore(fake), settings(fake), web_server=server)  # mounts its check
    assert await server.readiness() == {"slack": True}
    fake.valid_tokens = {"xoxb-other"}
    assert await server.readiness() == {"slack": False}


def test_runtime_checks_raise_clear_errors(fake: FakeSlack, clean_env: None) -> None:
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        make_client(settings(fake, bot_token=None))
    slack = SlackAdapter(FakeCore(fake), settings(fake))
    with pytest.raises(RuntimeError, match="start"):
        _ = slack.identity
