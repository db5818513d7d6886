"""The adapter around the replies: queueing in delivery order, who is asking,
notices, prepare, readiness."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.app import (
    ASSISTANT_SCOPE,
    CONTEXT_LIMIT,
    ROLES_SCOPE,
    SCOPES,
    InOrder,
    Place,
    SlackAdapter,
    make_client,
)
from adapters.slack.settings import SlackSettings
from adapters.web import WebServer
from bridge.actions import Act, Acted, Action, Outcome
from bridge.channels import ChannelRules, Channels
from bridge.config import ConfigError
from bridge.errors import QuestionRefused
from bridge.events import ContextMessage, PlatformEvent, ThreadKey, order_key
from bridge.openwebui.organise import Rater
from bridge.policy import AccessPolicy, Asker, UserKind, judge
from bridge.reply import Platform
from tests.fakes.slack_server import TEAM_ID, FakeSlack

SECRET = "signing-secret"


class FakeCore:
    """The core as the adapter sees it; storing an event takes a moment, as in SQLite.
    ``refuse`` maps a question's text to the notice its refusal carries."""

    def __init__(self, fake: FakeSlack, access: AccessPolicy | None = None) -> None:
        self.fake = fake
        # Guests and external users allowed: no look-up needed to judge an asker.
        self.access = access or AccessPolicy(allow_guests=True, allow_external=True)
        self.platforms: list[Platform] = []
        self.events: list[PlatformEvent] = []
        self.askers: list[Asker | None] = []
        self.threads: set[ThreadKey] = set()
        self.lookups_before_submit: list[int] = []
        self.refuse: dict[str, str | None] = {}
        self.channels = Channels()
        self._seen: set[str] = set()
        # What people do to answers: message ts → the thread whose answer it holds.
        self.answers: dict[str, ThreadKey] = {}
        self.rated: list[tuple[str, Rater, int, bool]] = []
        self.rate_delays: list[float] = []  # seconds each next rating takes
        self.stopped: list[ThreadKey] = []
        self.stop_asks: list[str] = []
        self.regenerate_askers: list[str] = []
        self.regenerated: list[tuple[str, str]] = []
        self.not_latest: dict[str, str] = {}  # message ts → the refusal's notice
        self.edits: list[tuple[PlatformEvent, Asker | None]] = []  # edited questions
        self.retracted: list[tuple[ThreadKey, str]] = []  # deleted messages

    def register(self, platform: Platform) -> None:
        self.platforms.append(platform)

    def rules(self, channel: str) -> ChannelRules:
        return self.channels.rules(channel)

    async def knows_thread(self, key: ThreadKey) -> bool:
        return key in self.threads

    async def stop(self, key: ThreadKey) -> bool:
        self.stopped.append(key)
        return True

    async def act(self, action: Action) -> Acted:
        # Judged as the core judges (bridge.intake.Bridge.act); what the adapter sends
        # is under test here.
        key = self.answers.get(action.message_id) if action.platform == "slack" else None
        if key is None:
            return Acted(Outcome.NOT_AN_ANSWER)
        asker = action.asker
        if asker is not None and (
            (not asker.direct and self.rules(asker.channel).respond_to == "off")
            or judge(self.access, asker) is not None
        ):
            return Acted(Outcome.NOT_ALLOWED)
        if action.act is Act.STOP:
            self.stop_asks.append(action.message_id)
        elif action.act is Act.REGENERATE:
            self.regenerate_askers.append(action.person.user_id)
            if action.message_id in self.not_latest:
                return Acted(Outcome.REFUSED, self.not_latest[action.message_id], key)
            self.regenerated.append((action.message_id, action.event_id))
        else:
            await asyncio.sleep(self.rate_delays.pop(0) if self.rate_delays else 0)
            self.rated.append(
                (action.message_id, action.person, action.vote, action.act is Act.UNRATE)
            )
        return Acted(Outcome.DONE)

    async def edit(self, event: PlatformEvent, asker: Asker | None = None) -> object:
        if event.text in self.refuse:
            raise QuestionRefused("refused", self.refuse[event.text])
        self.edits.append((event, asker))
        return object()

    async def retract(self, key: ThreadKey, message_id: str) -> bool:
        self.retracted.append((key, message_id))
        return True

    async def submit(self, event: PlatformEvent, asker: Asker | None = None) -> object:
        self.lookups_before_submit.append(
            self.fake.count("users.info") + self.fake.count("conversations.replies")
        )
        if event.text in self.refuse:
            raise QuestionRefused("refused", self.refuse[event.text])
        await asyncio.sleep(0.05)
        if event.event_id in self._seen:
            return None  # a duplicate delivery, as the core reports it
        self._seen.add(event.event_id)
        self.threads.add(event.thread)
        self.events.append(event)
        self.askers.append(asker)
        return object()


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
    await adapter.close()


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


async def test_a_long_thread_gives_its_newest_messages_as_context(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, _ = adapter
    fake.add_user("U2", "Bob")
    parent, _, _ = fake.user_says("C1", "U2", "message 0")
    for n in range(1, CONTEXT_LIMIT + 50):
        fake.user_says("C1", "U2", f"message {n}", thread_ts=parent)
    asked, _, _ = fake.user_says("C1", "U2", "<@UBOT> sum it up", thread_ts=parent)
    fake.user_says("C1", "U2", "said after the question", thread_ts=parent)
    event = PlatformEvent(
        event_id=f"C1:{asked}",
        thread=ThreadKey("slack", TEAM_ID, "C1", parent),
        message_id=asked,
        author_id="U2",
        author_name="",
        text="sum it up",
        order=order_key(asked),
        needs_context=True,
    )
    context = (await slack.prepare(event)).context
    # The newest messages before the question, in order; never what came after it.
    assert [m.text for m in context] == [f"message {n}" for n in range(50, CONTEXT_LIMIT + 50)]


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


# -- who asks, and what they are told ---------------------------------------------


async def started(fake: FakeSlack, core: FakeCore) -> SlackAdapter:
    slack = SlackAdapter(core, settings(fake))
    await slack.start()
    return slack


async def deliver(fake: FakeSlack, slack: SlackAdapter, *bodies: dict[str, Any] | None) -> None:
    url = f"http://127.0.0.1:{slack.http_port}/slack/events"
    for body in bodies:
        if body is not None:
            assert (await fake.post_event(url, body, SECRET))[0] == 200


async def test_the_asker_is_looked_up_once_before_queueing(
    fake: FakeSlack, clean_env: None
) -> None:
    fake.add_user("U1", "Ada", is_restricted=True)
    core = FakeCore(fake, AccessPolicy())  # guests refused: the kind matters
    slack = await started(fake, core)
    try:
        _, message, mention = fake.user_says("C1", "U1", "<@UBOT> hi")
        await deliver(fake, slack, message, mention)  # Slack sends both for one mention
        await fake.wait_for(lambda: len(core.events) == 1, what="the question")
        assert core.askers == [Asker(TEAM_ID, "C1", "U1", kind=UserKind.GUEST)]
        assert core.lookups_before_submit[0] == 1 == fake.count("users.info")
    finally:
        await slack.stop()
        await slack.close()


async def test_a_reply_right_behind_a_slow_look_up_keeps_its_place(
    fake: FakeSlack, clean_env: None
) -> None:
    fake.add_user("U1", "Ada")
    fake.delay("users.info", 0.5)
    core = FakeCore(fake, AccessPolicy())
    slack = await started(fake, core)
    url = f"http://127.0.0.1:{slack.http_port}/slack/events"
    try:
        first, _, mention = fake.user_says("C1", "U1", "<@UBOT> first")
        _, reply, _ = fake.user_says("C1", "U1", "second", thread_ts=first)
        assert mention is not None
        opening = asyncio.create_task(fake.post_event(url, mention, SECRET))
        await fake.wait_for_calls("users.info")  # the mention's asker is being looked up
        # The reply arrives while its thread does not exist yet: it waits its turn
        # rather than being judged channel chatter.
        assert (await fake.post_event(url, reply, SECRET))[0] == 200
        assert (await opening)[0] == 200
        assert [e.text for e in core.events] == ["first", "second"]
    finally:
        await slack.stop()
        await slack.close()


async def test_a_look_up_slack_does_not_answer_leaves_the_asker_unknown(
    fake: FakeSlack, clean_env: None
) -> None:
    fake.add_user("U1", "Ada")
    fake.hold("users.info")  # Slack never answers: the event must still be acknowledged
    core = FakeCore(fake, AccessPolicy())
    slack = await started(fake, core)
    try:
        _, message, _ = fake.user_says("D1", "U1", "hello")
        await deliver(fake, slack, message)
        assert [a.kind if a else None for a in core.askers] == [UserKind.UNKNOWN]
    finally:
        fake.release_all()
        await slack.stop()
        await slack.close()


async def test_a_refused_asker_gets_one_notice_where_they_asked(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, core = adapter
    core.refuse |= {"hi": "Not here.", "more": "Not you.", "quiet": None}
    parent, message, mention = fake.user_says("C1", "U1", "<@UBOT> hi")
    await deliver(fake, slack, message, mention)
    _, follow_up, _ = fake.user_says("C1", "U1", "<@UBOT> more", thread_ts=parent)
    await deliver(fake, slack, follow_up, follow_up)  # Slack retried the delivery
    _, silent, _ = fake.user_says("C1", "U2", "<@UBOT> quiet")
    await deliver(fake, slack, silent)
    await fake.wait_for(lambda: len(fake.ephemerals) == 2, what="the notices")
    await asyncio.sleep(0.2)  # a second notice would show by now
    assert [(e.channel, e.user, e.text, e.thread_ts) for e in fake.ephemerals] == [
        ("C1", "U1", "Not here.", None),  # a top-level question: in the channel
        ("C1", "U1", "Not you.", parent),  # in the thread it was asked in
    ]
    assert core.events == [] and fake.bot_replies("C1", parent) == []


async def test_channel_chatter_is_neither_judged_nor_noticed(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, core = adapter
    core.access = AccessPolicy()  # a look-up would be needed, were it judged
    core.refuse[""] = "Put your question in the message."
    _, chatter, _ = fake.user_says("C1", "U1", "lunch anyone?")
    _, empty, _ = fake.user_says("C1", "U1", "", files=["menu.pdf"])
    await deliver(fake, slack, chatter, empty)
    assert core.lookups_before_submit == [] and fake.count("users.info") == 0
    await asyncio.sleep(0.2)
    assert fake.ephemerals == []


async def test_a_notice_slack_refuses_is_logged_not_raised(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore], caplog: pytest.LogCaptureFixture
) -> None:
    slack, core = adapter
    core.refuse["hi"] = "Not here."
    fake.fail_next("chat.postEphemeral", "user_not_in_channel")
    _, message, _ = fake.user_says("C1", "U1", "<@UBOT> hi")
    with caplog.at_level(logging.INFO, logger="adapters.slack"):
        await deliver(fake, slack, message)
        await fake.wait_for_calls("chat.postEphemeral")
        await fake.wait_for(lambda: "cannot show a notice" in caplog.text, what="the log line")
    assert "cannot show a notice to U1 in C1: user_not_in_channel" in caplog.text
    assert "Traceback" not in caplog.text and "xoxb" not in caplog.text


async def test_missing_usergroups_scope_is_warned_only_when_roles_are_set(
    fake: FakeSlack, clean_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    for roles, warned in ((frozenset(), False), (frozenset({"SOPS"}), True)):
        caplog.clear()
        slack = await started(fake, FakeCore(fake, AccessPolicy(allowed_roles=roles)))
        await slack.stop()
        await slack.close()
        assert ("usergroups:read" in caplog.text) is warned
    fake.scopes.append("usergroups:read")
    caplog.clear()
    slack = await started(fake, FakeCore(fake, AccessPolicy(allowed_roles=frozenset({"S1"}))))
    await slack.stop()
    await slack.close()
    assert "usergroups:read" not in caplog.text


async def test_in_order_keeps_order_when_a_waiter_gives_up() -> None:
    order = InOrder()
    first, second, third = order.place(), order.place(), order.place()
    ran: list[str] = []

    async def section(place: Place, name: str) -> None:
        try:
            await place.turn()
            ran.append(name)
        finally:
            place.done()

    gave_up = asyncio.create_task(section(second, "second"))
    last = asyncio.create_task(section(third, "third"))
    await asyncio.sleep(0.01)
    gave_up.cancel()
    await asyncio.sleep(0.01)
    assert ran == [] and not last.done()  # the third still waits for the first
    first.done()
    await last
    assert ran == ["third"]


@pytest.mark.parametrize("manifest", ["manifest.yaml", "manifest-http.yaml"])
def test_manifests_ask_for_every_scope_the_adapter_uses(manifest: str) -> None:
    text = (Path(__file__).parents[3] / "deploy" / "slack" / manifest).read_text()
    bot = text.split("bot:", 1)[1].split("settings:", 1)[0]
    asked = set(re.findall(r"^\s+- (\S+)", bot, re.MULTILINE))
    assert asked == {*SCOPES, ROLES_SCOPE, ASSISTANT_SCOPE}


# -- per-channel rules, places, links ------------------------------------------------------


async def test_each_channel_answers_by_its_own_rule(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, core = adapter
    core.access = AccessPolicy()  # a look-up is needed for anything judged
    core.channels = Channels(
        by_id={"CALL": ChannelRules(respond_to="all"), "COFF": ChannelRules(respond_to="off")}
    )
    fake.add_user("U1", "Ada")
    _, everyone, _ = fake.user_says("CALL", "U1", "does the VPN work?")
    _, chatter, _ = fake.user_says("C1", "U1", "does the VPN work?")
    _, silenced, mention = fake.user_says("COFF", "U1", "<@UBOT> hello?")
    await deliver(fake, slack, everyone, chatter, silenced, mention)
    await fake.wait_for(lambda: len(core.events) == 1, what="the question")
    await asyncio.sleep(0.2)
    (event,) = core.events
    assert (event.thread.channel, event.text, event.place, event.direct) == (
        "CALL",
        "does the VPN work?",
        "CALL",
        False,
    )
    assert event.thread.thread == event.message_id  # it opened its own thread
    assert fake.count("users.info") == 1  # only the answered question was judged
    assert fake.ephemerals == []  # an "off" channel says nothing at all


async def test_prepare_names_the_place_and_links_the_thread(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, core = adapter
    fake.add_user("U1", "Ada")
    fake.add_channel("C1", "support")
    thread, message, mention = fake.user_says("C1", "U1", "<@UBOT> hi")
    dm, private, _ = fake.user_says("D1", "U1", "psst")
    await deliver(fake, slack, message, mention, private)
    await fake.wait_for(lambda: len(core.events) == 2, what="both questions")
    channel, direct = [await slack.prepare(e) for e in core.events]
    assert (channel.place, channel.direct, channel.place_name) == ("C1", False, "#support")
    assert channel.link == f"https://fake-team.slack.com/archives/C1/p{thread.replace('.', '')}"
    assert (direct.place, direct.direct, direct.place_name) == ("D1", True, "DMs")
    assert direct.link == f"https://fake-team.slack.com/archives/D1/p{dm.replace('.', '')}"
    # A renamed channel is named anew at once (Slack's channel_rename event).
    await deliver(fake, slack, fake.rename_channel("C1", "help-desk"))
    fresh = replace(core.events[0], place_name="", author_name="")
    assert (await slack.prepare(fresh)).place_name == "#help-desk"
    # A turn stored before places were kept gets its place too.
    old = replace(core.events[0], place="", place_name="", link="")
    assert (await slack.prepare(old)).place_name == "#help-desk"
    assert fake.count("conversations.info") == 1


# -- reactions -------------------------------------------------------------------------------


async def answered(fake: FakeSlack, core: FakeCore, channel: str = "C1") -> tuple[ThreadKey, str]:
    """A question in ``channel`` and the bot's answer to it (as the core knows it)."""
    thread, _, _ = fake.user_says(channel, "U1", "<@UBOT> hi")
    answer = await AsyncWebClient(token="xoxb-test", base_url=fake.api_url).chat_postMessage(
        channel=channel, thread_ts=thread, text="an answer"
    )
    key = ThreadKey("slack", TEAM_ID, channel, thread)
    core.answers[str(answer["ts"])] = key
    return key, str(answer["ts"])


async def test_thumbs_become_ratings_in_the_order_given(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, core = adapter
    fake.add_user("U1", "Ada")
    fake.add_user("U2", "Bob")
    _, ts = await answered(fake, core)
    core.rate_delays = [0.3, 0.0, 0.0, 0.0]  # the first rating is slow to store
    await deliver(
        fake,
        slack,
        fake.react("C1", ts, "U1", "+1"),
        fake.react("C1", ts, "U1", "thumbsdown::skin-tone-2"),
        fake.unreact("C1", ts, "U1", "thumbsdown::skin-tone-2"),
        fake.react("C1", ts, "U2", "thumbsup"),
    )
    await fake.wait_for(lambda: len(core.rated) == 4, what="the ratings")
    assert [(m, r, v, gone) for m, r, v, gone in core.rated] == [
        (ts, Rater("slack", "U1", "Ada"), 1, False),
        (ts, Rater("slack", "U1", "Ada"), -1, False),
        (ts, Rater("slack", "U1", "Ada"), -1, True),
        (ts, Rater("slack", "U2", "Bob"), 1, False),
    ]


async def test_reactions_that_do_not_count(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, core = adapter
    core.access = AccessPolicy(denied_users=frozenset({"UBAD"}), allow_guests=True)
    core.channels = Channels(by_id={"COFF": ChannelRules(respond_to="off")})
    fake.add_user("U1", "Ada")
    fake.add_user("UBAD", "Mallory")
    fake.add_user("UAPP", "Some bot", is_bot=True)
    _, ts = await answered(fake, core)
    _, silenced = await answered(fake, core, "COFF")
    person, _, _ = fake.user_says("C1", "U1", "not an answer")
    await deliver(
        fake,
        slack,
        fake.react("C1", ts, "UBAD", "+1"),  # a denied person
        fake.react("C1", ts, "UAPP", "+1"),  # a bot
        fake.react("C1", ts, "U1", "tada"),  # not a reaction the bridge knows
        fake.react("C1", person, "U1", "+1"),  # on a person's message
        fake.react("COFF", silenced, "U1", "-1"),  # in a channel the bot is off in
        fake.reaction_event("C1", "9.000100", "U1", "-1", item_user="UBOT"),  # no answer
    )
    await deliver(fake, slack, fake.react("C1", ts, "U1", "+1"))  # the one that counts
    await fake.wait_for(lambda: len(core.rated) == 1, what="the rating")
    await asyncio.sleep(0.2)
    assert [(m, r.user_id) for m, r, _, _ in core.rated] == [(ts, "U1")]
    assert fake.ephemerals == []  # ignored in silence


async def test_stop_reactions_ask_the_core_to_stop_the_message_reacted_to(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, core = adapter
    fake.add_user("U1", "Ada")
    key, earlier = await answered(fake, core)
    event = PlatformEvent(
        event_id="e",
        thread=key,
        message_id="2.0",
        author_id="U1",
        author_name="Ada",
        text="more",
    )

    async def save(ids: Sequence[str]) -> None:
        for ts in ids:
            core.answers[ts] = key

    reply = slack.reply(event, (), save)
    assert await reply.update("streaming")
    (streaming,) = [m.ts for m in fake.bot_replies("C1", key.thread) if m.streaming]
    await deliver(fake, slack, fake.react("C1", earlier, "U1", "black_square_for_stop"))
    await fake.wait_for(lambda: core.stop_asks == [earlier], what="the first stop")
    await deliver(fake, slack, fake.react("C1", streaming, "U1", "stop_button"))
    await fake.wait_for(lambda: core.stop_asks == [earlier, streaming], what="the second stop")
    await reply.finish("streaming")
    assert core.stopped == []  # never the whole thread's answer, whatever is under way


async def test_repeat_reaction_regenerates_or_says_why_not(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, core = adapter
    fake.add_user("U1", "Ada")
    key, older = await answered(fake, core)
    _, latest = await answered(fake, core)
    core.not_latest[older] = "Only the latest answer can be redone."
    again = fake.react("C1", latest, "U1", "repeat")
    refused = fake.react("C1", older, "U1", "repeat")
    await deliver(fake, slack, again, again, refused, refused)  # each delivered twice
    await fake.wait_for(lambda: len(fake.ephemerals) == 1, what="the notice")
    await asyncio.sleep(0.2)
    event_ts = again["event"]["event_ts"]
    # Both deliveries carry one event id: the core queues one new answer.
    assert core.regenerated == [(latest, f"reaction:C1:{latest}:U1:{event_ts}")] * 2
    assert set(core.regenerate_askers) == {"U1"}  # counted against who reacted
    assert [(e.channel, e.user, e.thread_ts, e.text) for e in fake.ephemerals] == [
        ("C1", "U1", key.thread, "Only the latest answer can be redone.")
    ]


# -- assistant threads -----------------------------------------------------------------------


async def test_assistant_thread_gets_prompts_and_a_title(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, core = adapter
    fake.add_user("U1", "Ada")
    prompts = ("Summarise my week", "What is our on-call policy? " + "x" * 60)
    core.channels = Channels(by_id={"D1": ChannelRules(suggested_prompts=prompts)})
    thread, started = fake.open_assistant_thread("D1", "U1", context_channel="C1")
    await deliver(fake, slack, started)
    await fake.wait_for(lambda: fake.suggested, what="the prompts")
    ((channel, ts, shown, _),) = fake.suggested
    assert (channel, ts) == ("D1", thread)
    assert [p["message"] for p in shown] == list(prompts)
    assert shown[1]["title"].endswith("…") and len(shown[1]["title"]) <= 40
    question = "How do I rotate the *database* credentials for the staging cluster safely?"
    _, message, _ = fake.user_says("D1", "U1", question, thread_ts=thread)
    await deliver(fake, slack, message)
    await fake.wait_for(lambda: fake.titles, what="the title")
    assert fake.titles == {
        ("D1", thread): "How do I rotate the *database* credentials for the staging…"
    }
    # The thread's opening message is Slack's, not context for the model.
    assert (await slack.prepare(core.events[0])).context == ()
    _, follow_up, _ = fake.user_says("D1", "U1", "and production?", thread_ts=thread)
    await deliver(fake, slack, follow_up)
    await fake.wait_for(lambda: len(core.events) == 2, what="the follow-up")
    await asyncio.sleep(0.2)
    assert fake.count("assistant.threads.setTitle") == 1  # the first question names it


async def test_assistant_extras_need_the_scope_and_failures_are_harmless(
    fake: FakeSlack, clean_env: None
) -> None:
    fake.add_user("U1", "Ada")
    core = FakeCore(fake)
    core.channels = Channels(defaults=ChannelRules(suggested_prompts=("Hi",)))
    fake.fail_next("assistant.threads.setSuggestedPrompts", "internal_error")
    slack = await started(fake, core)
    try:
        _, first = fake.open_assistant_thread("D1", "U1")
        await deliver(fake, slack, first)
        await fake.wait_for_calls("assistant.threads.setSuggestedPrompts")
    finally:
        await slack.stop()
        await slack.close()
    fake.scopes.remove("assistant:write")
    slack = await started(fake, core)
    try:
        _, second = fake.open_assistant_thread("D1", "U1")
        _, question, _ = fake.user_says("D1", "U1", "hello")
        await deliver(fake, slack, second, question)
        await asyncio.sleep(0.2)
    finally:
        await slack.stop()
        await slack.close()
    assert fake.count("assistant.threads.setSuggestedPrompts") == 1
    assert fake.count("assistant.threads.setTitle") == 0 and fake.suggested == []


async def answer_to(slack: SlackAdapter, event: PlatformEvent, text: str) -> None:
    async def save(ids: Sequence[str]) -> None:
        pass

    reply = slack.reply(event, (), save)
    # The question goes to Open WebUI right after start(): it never waits on Slack.
    await asyncio.wait_for(reply.start(), 5)
    await reply.finish(text)


async def test_thinking_shows_only_in_assistant_threads_and_never_holds_the_question(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, core = adapter
    fake.add_user("U1", "Ada")
    _, _, mention = fake.user_says("C1", "U1", "<@UBOT> in a channel")
    await deliver(fake, slack, mention)
    await fake.wait_for(lambda: len(core.events) == 1, what="the mention")
    await answer_to(slack, core.events[0], "A channel answer.")
    assert fake.count("assistant.threads.setStatus") == 0

    thread, opened = fake.open_assistant_thread("D1", "U1")
    await deliver(fake, slack, opened)
    _, question, _ = fake.user_says("D1", "U1", "in the assistant", thread_ts=thread)
    await deliver(fake, slack, question)
    await fake.wait_for(lambda: len(core.events) == 2, what="the assistant question")
    fake.hold("assistant.threads.setStatus")  # Slack is slow to show the status…

    async def save(ids: Sequence[str]) -> None:
        pass

    reply = slack.reply(core.events[1], (), save)
    await asyncio.wait_for(reply.start(), 5)  # …which does not hold the question up
    await fake.wait_for(lambda: fake.held, what="the status call")
    await reply.finish("An assistant answer.")
    fake.release("assistant.threads.setStatus")
    assert fake.calls_of("assistant.threads.setStatus")[0].params["status"] == "is thinking…"
    assert fake.bot_replies("D1", thread)[-1].text == "An assistant answer."


async def test_web_api_calls_share_one_connection(fake: FakeSlack, clean_env: None) -> None:
    core = FakeCore(fake)
    slack = await started(fake, core)  # auth.test
    try:
        parent, _, _ = fake.user_says("C1", "U1", "<@UBOT> hi")
        for n in range(10):
            await slack.client.chat_postMessage(channel="C1", thread_ts=parent, text=f"{n}")
        assert await slack.ready()  # the quick client
        event = PlatformEvent(
            event_id="e",
            thread=ThreadKey("slack", TEAM_ID, "C1", parent),
            message_id=parent,
            author_id="U1",
            author_name="",
            text="hi",
        )
        await answer_to(slack, await slack.prepare(event), "An answer.")  # the replies
        assert len(fake.calls) >= 14
        assert fake.api_connections == 1
    finally:
        await slack.stop()
        await slack.close()
