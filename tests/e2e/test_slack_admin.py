"""What admins steer and what people do to answers, on Slack end to end: per-channel
rules from a TOML config, 👍/👎 as Open WebUI feedback, ⏹ and 🔁 as reactions,
assistant threads. The real Slack adapter (Socket Mode) talks to the local
Slack-compatible server; the real core, real Open WebUI, real SQLite.

One bridge per Open WebUI version serves every scenario (each has its own
threads). Questions carry a marker unique to the run, so what the model server
and Open WebUI recorded for them is found among other tests' traffic.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from adapters.runtime import Runtime, open_runtime
from adapters.slack.app import ASSISTANT_SCOPE, SCOPES, SlackAdapter, make_client
from adapters.slack.budget import Rates, SlackBudget
from adapters.slack.reply import SlackOutput
from adapters.slack.settings import SlackSettings
from bridge.channels import load_channels
from bridge.config import read_config_file
from bridge.events import PlatformEvent
from bridge.openwebui.organise import Feedback, Organiser
from tests import treecheck
from tests.contract.bridge_fixtures import fetch_chat, settings_for
from tests.fakes.slack_server import BOT_USER_ID, WORKSPACE_URL, FakeSlack, Message
from tests.harness.model_server import RemoteModelServer, ThreadedModelServer, expected_reply
from tests.harness.openwebui import RunningOpenWebUI

SUPPORT, ENGINEERING, QUIET, DM = "CSUP", "CENG", "COFF", "D100"
ALICE, BOB, MALLORY = "UALICE", "UBOB", "UMAL"
NAMES = {ALICE: "Alice", BOB: "Bob", MALLORY: "Mallory"}
STOPPED = "\n\n_(stopped)_"
WAIT = 60.0

Model = ThreadedModelServer | RemoteModelServer

REGENERATE_LATEST_ONLY = "I can only write a new answer to the latest question in a thread."


def config(run: str) -> str:
    """Three channels that differ in model, system prompt and what they answer."""
    return f"""
[defaults]
suggested_prompts = ["What can you do?", "Summarise this thread"]

[[channels]]
id = "{SUPPORT}"
name = "support"
model = "fake-model-2"
system_prompt = "You are the support desk ({run})."
respond_to = "all"

[[channels]]
id = "{ENGINEERING}"
name = "engineering"
model = "fake-model"
system_prompt = "You are the engineering helper ({run})."

[[channels]]
id = "{QUIET}"
respond_to = "off"
"""


@dataclass
class Asked:
    channel: str
    ts: str
    thread: str
    seen_as: str  # what the model reads: "Name: text"

    @property
    def answer(self) -> str:
        return expected_reply(self.seen_as)


@dataclass
class World:
    openwebui: RunningOpenWebUI
    model: Model
    fake: FakeSlack
    runtime: Runtime
    adapter: SlackAdapter
    run: str
    prepared: list[PlatformEvent] = field(default_factory=list)

    async def say(
        self,
        user: str,
        text: str,
        *,
        channel: str = ENGINEERING,
        thread: str | None = None,
        mention: bool = True,
    ) -> Asked:
        """``user`` posts ``text`` (plus this run's marker); Slack delivers every event."""
        body = f"{text} {self.run}"
        posted = f"<@{BOT_USER_ID}> {body}" if mention else body
        ts, message, app_mention = self.fake.user_says(channel, user, posted, thread_ts=thread)
        await self.fake.send_event(message)
        if app_mention is not None:
            await self.fake.send_event(app_mention)
        return Asked(channel, ts, thread or ts, f"{NAMES[user]}: {body}")

    async def react(self, user: str, message: Message, name: str, *, removed: bool = False) -> None:
        change = self.fake.unreact if removed else self.fake.react
        await self.fake.send_event(change(message.channel, message.ts, user, name))

    def replies(self, asked: Asked) -> list[Message]:
        return self.fake.bot_replies(asked.channel, asked.thread)

    async def until(self, check: Callable[[], Any], what: str, timeout: float = WAIT) -> None:
        await self.fake.wait_for(check, timeout=timeout, what=what)

    async def answered(self, *asked: Asked) -> None:
        """Every question's thread shows its whole answer, and the bridge is idle."""

        def done() -> bool:
            shown = {(a.channel, a.thread): [m.text for m in self.replies(a)] for a in asked}
            return self.runtime.bridge.idle and all(
                a.answer in shown[(a.channel, a.thread)] for a in asked
            )

        await self.until(done, "the answers")

    async def eventually(self, check: Callable[[], Any], what: str) -> None:
        """Poll an async ``check`` (Open WebUI state) until it holds."""
        deadline = time.monotonic() + WAIT
        while not await check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.2)

    def chat_id(self, asked: Asked) -> str:
        database = self.runtime.settings.bridge_database
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            row = db.execute(
                "select chat_id from conversations where channel = ? and thread = ?",
                (asked.channel, asked.thread),
            ).fetchone()
        assert row is not None and row[0], f"no chat for {asked}"
        return str(row[0])

    def chat(self, asked: Asked) -> dict[str, Any]:
        chat: dict[str, Any] = fetch_chat(self.openwebui, self.chat_id(asked))["chat"]
        return chat

    def history(self, asked: Asked) -> dict[str, Any]:
        history: dict[str, Any] = self.chat(asked)["history"]
        assert treecheck.problems(history) == [], history
        return history

    async def feedbacks(self, answer_id: str) -> list[Feedback]:
        mine = await Organiser(self.runtime.client).feedbacks()
        return [f for f in mine if f.message_id == answer_id]

    async def completions(self, marker: str) -> list[dict[str, Any]]:
        """The chat completion requests the model server got with ``marker`` in them."""
        recorded = await asyncio.to_thread(self.model.recorded)
        return [
            r["body"] for r in recorded if r.get("kind") == "chat" and marker in str(r.get("body"))
        ]


@pytest.fixture(scope="module")
async def world(
    openwebui: RunningOpenWebUI, model_server: Model, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp(f"slack-admin-{openwebui.version}")
    run = f"r{uuid.uuid4().hex[:10]}"
    path = tmp / "bridge.toml"
    path.write_text(config(run))
    settings = settings_for(openwebui, tmp / "bridge.db", bridge_denied_users=[MALLORY])
    async with FakeSlack() as fake:
        fake.scopes = [*SCOPES, ASSISTANT_SCOPE]
        fake.add_channel(SUPPORT, "support")
        fake.add_channel(ENGINEERING, "engineering")
        fake.add_channel(QUIET, "quiet")
        for user, name in NAMES.items():
            fake.add_user(user, name)
        async with open_runtime(
            settings, channels=load_channels(settings, read_config_file(path))
        ) as runtime:
            slack = SlackSettings(
                bot_token="xoxb-admin",
                app_token="xapp-admin",
                api_url=fake.api_url,
                update_interval=0.2,
            )
            # Slack's tiers allow a few new streams a minute per workspace; the scenarios
            # open more than that within seconds, so the budget's minute is shortened.
            output = SlackOutput(
                client=make_client(slack),
                quick=make_client(slack, retries=False),
                budget=SlackBudget(Rates(window=5.0)),
            )
            adapter = SlackAdapter(runtime.bridge, slack, output=output)
            world = World(openwebui, model_server, fake, runtime, adapter, run)
            prepare = adapter.prepare

            async def recorded(event: PlatformEvent) -> PlatformEvent:
                prepared = await prepare(event)
                world.prepared.append(prepared)
                return prepared

            adapter.prepare = recorded  # type: ignore[method-assign]  # a recording
            await adapter.start()
            try:
                await fake.wait_for_socket()
                yield world
            finally:
                fake.release_all()
                await adapter.stop()
                await adapter.close()


# -- per-channel rules ---------------------------------------------------------------------


async def test_each_channel_answers_with_its_own_model_prompt_and_rule(world: World) -> None:
    support = await world.say(ALICE, "is the VPN down?", channel=SUPPORT, mention=False)
    engineering = await world.say(ALICE, "how do we deploy?", channel=ENGINEERING)
    quiet = await world.say(ALICE, "anyone here?", channel=QUIET)
    quiet_chatter = await world.say(ALICE, "hello?", channel=QUIET, mention=False)
    chatter = await world.say(BOB, "lunch?", channel=ENGINEERING, mention=False)
    await world.answered(support, engineering)
    await asyncio.sleep(1.5)  # anything wrongly started shows by now

    for asked, model, prompt in (
        (support, "fake-model-2", f"You are the support desk ({world.run})."),
        (engineering, "fake-model", f"You are the engineering helper ({world.run})."),
    ):
        # The thread shows the answer; Open WebUI stores the channel's model and prompt.
        assert [m.text for m in world.replies(asked)] == [asked.answer]
        chat = world.chat(asked)
        assert chat["models"] == [model]
        assert chat["params"]["system"] == prompt
        path = treecheck.branch(world.history(asked))
        assert [m["role"] for m in path][-2:] == ["user", "assistant"]
        assert path[-1]["model"] == model
        # The model got the prompt first, then the question.
        (request,) = [
            r
            for r in await world.completions(asked.seen_as)
            if asked.seen_as in str(r["messages"][-1])
        ]
        assert request["model"] == model
        assert request["messages"][0] == {"role": "system", "content": prompt}
        assert asked.seen_as in str(request["messages"][-1]["content"])

    # The support channel answered a message without a mention, in a thread under it.
    assert world.replies(support)[0].thread_ts == support.ts
    # The quiet channel answered nothing, said nothing, and kept nothing.
    for silent in (quiet, quiet_chatter, chatter):
        assert world.replies(silent) == []
        assert await world.completions(silent.seen_as) == []
    assert world.fake.ephemerals == []

    # Each turn knew its place and how to get back to its thread.
    places = {(e.place, e.place_name, e.link) for e in world.prepared}
    for asked, name in ((support, "#support"), (engineering, "#engineering")):
        link = f"{WORKSPACE_URL}archives/{asked.channel}/p{asked.thread.replace('.', '')}"
        assert (asked.channel, name, link) in places


async def test_assistant_thread_gets_prompts_a_title_and_an_answer(world: World) -> None:
    thread, started = world.fake.open_assistant_thread(DM, ALICE, context_channel=SUPPORT)
    await world.fake.send_event(started)
    asked = await world.say(ALICE, "What changed in the release?", channel=DM, thread=thread)
    await world.answered(asked)
    await world.until(lambda: (DM, thread) in world.fake.titles, "the title")
    (suggested,) = [s for s in world.fake.suggested if s.thread_ts == thread]
    assert [p["message"] for p in suggested.prompts] == [
        "What can you do?",
        "Summarise this thread",
    ]
    assert world.fake.titles[(DM, thread)] == f"What changed in the release? {world.run}"
    prepared = [e for e in world.prepared if e.thread.thread == thread]
    assert prepared and {(e.direct, e.place_name) for e in prepared} == {(True, "DMs")}


# -- ratings -------------------------------------------------------------------------------


async def test_thumbs_become_one_rating_per_person(world: World) -> None:
    first = await world.say(ALICE, "rate me")
    second = await world.say(ALICE, "rate me too")
    await world.answered(first, second)
    (one,) = world.replies(first)
    (two,) = world.replies(second)
    one_id = treecheck.branch(world.history(first))[-1]["id"]
    two_id = treecheck.branch(world.history(second))[-1]["id"]

    async def votes(answer_id: str) -> list[tuple[str, int]]:
        return sorted(
            (f.rater.user_id if f.rater else "?", f.vote) for f in await world.feedbacks(answer_id)
        )

    async def shows(answer_id: str, want: list[tuple[str, int]]) -> bool:
        return await votes(answer_id) == want

    # One person, 👍 then 👎: one rating, the latest.
    await world.react(ALICE, one, "+1")
    await world.react(ALICE, one, "-1")
    await world.react(MALLORY, one, "+1")  # denied: not a rating
    await world.eventually(lambda: shows(one_id, [(ALICE, -1)]), "Alice's 👎")
    await asyncio.sleep(1.0)  # a second record would show by now
    (feedback,) = await world.feedbacks(one_id)
    assert (feedback.vote, feedback.rater and feedback.rater.name) == (-1, "Alice")
    assert feedback.chat_id == world.chat_id(first)
    # Taking 👎 back takes the rating back.
    await world.react(ALICE, one, "-1", removed=True)
    await world.eventually(lambda: shows(one_id, []), "the rating gone")
    # Two people: two ratings.
    await world.react(ALICE, two, "thumbsup")
    await world.react(BOB, two, "+1::skin-tone-4")
    await world.eventually(lambda: shows(two_id, [(ALICE, 1), (BOB, 1)]), "two 👍")
    assert await votes(one_id) == []


# -- stop and regenerate -----------------------------------------------------------------------


async def streaming(world: World, asked: Asked) -> Message:
    """The answer's message once it shows some text, still streaming."""

    def started() -> bool:
        return any(m.streaming and m.text for m in world.replies(asked))

    await world.until(started, "the answer to stream")
    (message,) = world.replies(asked)
    return message


async def stopped(world: World, asked: Asked, message: Message) -> None:
    """⏹ on ``message``: it ends marked stopped, and Open WebUI runs nothing for the chat."""
    await world.react(ALICE, message, "black_square_for_stop")
    await world.until(
        lambda: message.text.endswith(STOPPED) and not message.streaming, "the stop mark"
    )
    await world.until(lambda: world.runtime.bridge.idle, "the turn to end")

    async def nothing_running() -> bool:
        return await world.runtime.client.running_tasks(world.chat_id(asked)) == []

    await world.eventually(nothing_running, "Open WebUI's task to stop")


async def test_stop_reaction_keeps_what_was_shown_and_the_thread_goes_on(world: World) -> None:
    asked = await world.say(ALICE, "a long one [[words=400]] [[delay=0.05]]")
    message = await streaming(world, asked)
    await stopped(world, asked, message)
    shown = message.text.removesuffix(STOPPED)
    assert shown and asked.answer.startswith(shown) and shown != asked.answer

    follow_up = await world.say(ALICE, "and after that?", thread=asked.thread)
    await world.answered(follow_up)
    assert [m.text for m in world.replies(asked)] == [message.text, follow_up.answer]
    history = world.history(asked)
    path = treecheck.branch(history)
    assert [m["role"] for m in path] == ["user", "assistant", "user", "assistant"]
    # Open WebUI keeps the part that was written; the follow-up hangs under it.
    assert asked.answer.startswith(treecheck.answer_text(path[1]))
    assert path[2]["parentId"] == path[1]["id"]
    assert treecheck.answer_text(path[3]) == follow_up.answer


async def test_repeat_reaction_gives_another_answer_in_the_same_message(world: World) -> None:
    asked = await world.say(ALICE, "try again [[words=150]] [[delay=0.05]]")
    message = await streaming(world, asked)
    await stopped(world, asked, message)  # a first answer that differs from a whole one
    first_answer = treecheck.branch(world.history(asked))[1]["id"]

    await world.react(ALICE, message, "repeat")
    await world.until(lambda: message.text == asked.answer, "the new answer in place")
    await world.until(lambda: world.runtime.bridge.idle, "the turn to end")
    # The thread shows the new answer in the same message: nothing was posted.
    assert world.replies(asked) == [message]
    history = world.history(asked)
    question = treecheck.branch(history)[0]
    assert question["childrenIds"][0] == first_answer and len(question["childrenIds"]) == 2
    again = history["messages"][question["childrenIds"][1]]
    assert (again["role"], treecheck.answer_text(again)) == ("assistant", asked.answer)
    assert history["currentId"] == again["id"]

    # The next question continues from the new answer.
    follow_up = await world.say(ALICE, "thanks, next?", thread=asked.thread)
    await world.answered(follow_up)
    history = world.history(asked)
    path = treecheck.branch(history)
    assert [m["id"] for m in path[:2]] == [question["id"], again["id"]]
    assert path[2]["parentId"] == again["id"]
    assert treecheck.answer_text(path[3]) == follow_up.answer

    # 🔁 on an answer that is no longer the latest: told so, nothing changes.
    before = (len(history["messages"]), [m.text for m in world.replies(asked)])
    await world.react(ALICE, message, "repeat")
    await world.until(
        lambda: any(e.text == REGENERATE_LATEST_ONLY for e in world.fake.ephemerals_to(ALICE)),
        "the notice",
    )
    await asyncio.sleep(1.0)
    (notice,) = [e for e in world.fake.ephemerals_to(ALICE) if e.text == REGENERATE_LATEST_ONLY]
    assert (notice.channel, notice.thread_ts) == (ENGINEERING, asked.thread)
    after = (len(world.history(asked)["messages"]), [m.text for m in world.replies(asked)])
    assert after == before


# -- filed in Open WebUI -------------------------------------------------------------------


async def test_conversations_are_filed_by_channel_and_follow_a_rename(world: World) -> None:
    filing = f"CF{world.run[-6:].upper()}"  # a channel of this run: its folder is new
    world.fake.add_channel(filing, f"filing-{world.run}")
    in_channel = await world.say(ALICE, "filed in a channel", channel=filing)
    in_dm = await world.say(BOB, "filed in a DM", channel=DM, mention=False)
    await world.answered(in_channel, in_dm)
    organiser = Organiser(world.runtime.client)
    folders = {f.name: f.id for f in await organiser.folders()}
    channel_folder = folders[f"Slack · #filing-{world.run}"]
    assert await organiser.chats_in_folder(channel_folder) == [world.chat_id(in_channel)]
    assert world.chat_id(in_dm) in await organiser.chats_in_folder(folders["Slack · DMs"])
    tags = {t.id for t in await organiser.chat_tags(world.chat_id(in_channel))}
    assert tags == {"slack", f"filing-{world.run}", "alice"}  # ids: names lower-cased

    # Renamed on Slack: the same folder takes the new name with the next turn.
    await world.fake.send_event(world.fake.rename_channel(filing, f"renamed-{world.run}"))
    later = await world.say(BOB, "after the rename", channel=filing)
    await world.answered(later)
    renamed = {f.id: f.name for f in await organiser.folders()}
    assert renamed[channel_folder] == f"Slack · #renamed-{world.run}"
    assert sorted(await organiser.chats_in_folder(channel_folder)) == sorted(
        {world.chat_id(in_channel), world.chat_id(later)}
    )
