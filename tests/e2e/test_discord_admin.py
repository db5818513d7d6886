"""Admins steer Discord conversations, end to end: the real discord.py client as
``owui-bridge run`` builds it, with a TOML channel table, against the local
Discord-compatible server, the real core, real Open WebUI and a real SQLite file.

One bridge per Open WebUI version serves every scenario, each in its own thread
with its own marker. The world: guild Lab with #general (the defaults: answers
mentions), #support (``respond_to = "all"``, its own system prompt) and #quiet
(``respond_to = "off"``); Ada and Grace. Judged by what people see (the fake's
channel views, ephemeral answers) and what is stored (Open WebUI's chats, its
feedback records, running tasks).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.discord.app import DiscordAdapter, intents, make_client
from adapters.discord.settings import DiscordSettings
from adapters.runtime import Runtime, open_runtime
from bridge.channels import load_channels
from bridge.config import read_config_file
from bridge.openwebui.organise import Organiser
from tests import treecheck
from tests.contract.bridge_fixtures import fetch_chat, history_of, settings_for
from tests.fakes.discord_server import BOT_USER_ID, FakeDiscord, Message, point_discord_py_at
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI

pytestmark = pytest.mark.timeout(240)

TOKEN = "e2e-discord-admin-token"
MENTION = f"<@{BOT_USER_ID}>"
SUPPORT_PROMPT = "You are the support desk of Lab. Be brief."
EPHEMERAL = 1 << 6
# Long and slow enough to be stopped mid-answer (about 4 s).
SLOW = "[[words=240]] [[delay=0.05]]"

STOPPED = "Stopped."  # what /stop answers, privately
STOPPED_MARK = "_(stopped)_"  # the line a stopped answer ends with


@dataclass
class Admin:
    openwebui: RunningOpenWebUI
    fake: FakeDiscord
    runtime: Runtime
    guild: str
    general: str
    support: str
    quiet: str
    ada: str
    grace: str
    mallory: str  # a member the operator denied (BRIDGE_DENIED_USERS)

    # -- people act -------------------------------------------------------------

    def mention(self, text: str, channel: str = "") -> Message:
        """Ada mentions the bot (in #general unless told): the thread takes its id."""
        return self.fake.user_says(channel or self.general, self.ada, f"{MENTION} {text}")

    # -- what people see --------------------------------------------------------

    def answers(self, channel: str) -> list[Message]:
        """The bot's answers in ``channel``: its messages that reply to no one."""
        return [m for m in self.fake.bot_messages(channel) if m.reference is None]

    async def until(self, done: Callable[[], object], what: str, timeout: float = 60) -> None:
        """Wait for ``done`` with the bridge idle (all answers settled)."""
        deadline = time.monotonic() + timeout
        while not (done() and self.runtime.bridge.idle):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)

    async def answered(self, thread: str, expected: list[str]) -> list[Message]:
        await self.until(
            lambda: [m.content for m in self.answers(thread)] == expected,
            f"{thread} to show {expected!r} (shows {[m.content for m in self.answers(thread)]!r})",
        )
        return self.answers(thread)

    # -- what is stored -----------------------------------------------------------

    def turns_of(self, message_id: str) -> int:
        with sqlite3.connect(
            f"file:{self.runtime.settings.bridge_database}?mode=ro", uri=True
        ) as db:
            rows = db.execute(
                "select count(*) from turns where platform_message_id = ?", (message_id,)
            ).fetchone()
        return int(rows[0])

    def chat_id(self, thread: str) -> str:
        with sqlite3.connect(
            f"file:{self.runtime.settings.bridge_database}?mode=ro", uri=True
        ) as db:
            [(chat_id,)] = db.execute(
                "select chat_id from conversations where channel = ?", (thread,)
            ).fetchall()
        return str(chat_id)

    async def chat(self, thread: str) -> dict[str, Any]:
        return await asyncio.to_thread(fetch_chat, self.openwebui, self.chat_id(thread))

    async def history(self, thread: str) -> dict[str, Any]:
        history = history_of(await self.chat(thread))
        assert treecheck.problems(history) == [], history
        return history

    async def feedbacks(self, answer_id: str) -> list[tuple[str, int]]:
        """(platform user, vote) of each Open WebUI feedback record on ``answer_id``."""
        found = await Organiser(self.runtime.client).feedbacks()
        return sorted(
            (f.rater.user_id if f.rater else "?", f.vote)
            for f in found
            if f.message_id == answer_id
        )

    async def feedbacks_become(self, answer_id: str, expected: list[tuple[str, int]]) -> None:
        deadline = time.monotonic() + 30
        while (found := await self.feedbacks(answer_id)) != expected:
            if time.monotonic() > deadline:
                raise AssertionError(f"feedbacks {found!r}, expected {expected!r}")
            await asyncio.sleep(0.2)


def config(support: str, quiet: str) -> str:
    return f"""
[[channels]]
id = {support}
name = "support"
respond_to = "all"
system_prompt = "{SUPPORT_PROMPT}"

[[channels]]
id = "{quiet}"
name = "quiet"
respond_to = "off"
"""


@pytest.fixture(scope="module")
async def admin(
    openwebui: RunningOpenWebUI, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Admin]:
    tmp = tmp_path_factory.mktemp("discord-admin")
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Lab")
        general = fake.add_channel(guild, "general")
        support = fake.add_channel(guild, "support")
        quiet = fake.add_channel(guild, "quiet")
        ada = fake.add_user(name="ada", global_name="Ada")
        grace = fake.add_user(name="grace", global_name="Grace")
        mallory = fake.add_user(name="mallory", global_name="Mallory")
        for person in (ada, grace, mallory):
            fake.add_member(guild, person)
        config_file = tmp / "bridge.toml"
        config_file.write_text(config(support, quiet))  # a Discord id as a TOML number too
        settings = settings_for(openwebui, tmp / "discord-admin.db", bridge_denied_users=[mallory])
        discord_settings = DiscordSettings(
            bot_token=SecretStr(TOKEN),
            api_url=fake.api_url,
            gateway_url=fake.gateway_url,
            update_interval=0.2,
        )
        with point_discord_py_at(fake):
            channels = load_channels(settings, read_config_file(config_file))
            async with open_runtime(settings, channels=channels) as runtime:
                client = make_client(intents(), guild_ready_timeout=0.05)
                adapter = DiscordAdapter(
                    runtime.bridge, discord_settings, places=runtime.store, client=client
                )
                await adapter.start()
                try:
                    yield Admin(
                        openwebui,
                        fake,
                        runtime,
                        guild,
                        general,
                        support,
                        quiet,
                        ada,
                        grace,
                        mallory,
                    )
                finally:
                    await adapter.stop()
                    await runtime.bridge.drain(5)
                    await adapter.close()


def marked(text: str) -> str:
    return f"{text} m{uuid.uuid4().hex[:10]}"


def asked(text: str, who: str = "Ada") -> str:
    """A question as the model sees it: the asker's name, then the text."""
    return f"{who}: {text}"


# -- per-channel behaviour ----------------------------------------------------------------


async def test_each_channel_answers_as_configured(admin: Admin, model_server: Any) -> None:
    fake = admin.fake
    # #support answers every top-level message, mention or not, in a thread of its own.
    text = marked("the printer is on fire")
    question = fake.user_says(admin.support, admin.ada, text)
    [shown] = await admin.answered(question.id, [expected_reply(asked(text))])
    [thread] = fake.threads(admin.support)
    assert thread["id"] == question.id and thread["name"] == text
    # Its system prompt is the chat's, and reached the model before the question.
    chat = (await admin.chat(question.id))["chat"]
    assert chat["params"]["system"] == SUPPORT_PROMPT
    recorded = await asyncio.to_thread(model_server.recorded)
    sent = [
        r["body"]["messages"]
        for r in recorded
        if r["kind"] == "chat" and text in str(r["body"]["messages"])
    ]
    assert sent and sent[0][0] == {"role": "system", "content": SUPPORT_PROMPT}
    assert sent[0][-1]["content"] == asked(text)

    # #quiet answers nothing, not even a mention; #general (the defaults) wants a mention.
    hushed = admin.mention(marked("anyone here?"), admin.quiet)
    chatter = fake.user_says(admin.general, admin.ada, marked("just chatting"))
    barrier = marked("and here?")
    after = admin.mention(barrier)
    await admin.answered(after.id, [expected_reply(asked(barrier))])
    await asyncio.sleep(0.5)
    for ignored in (hushed, chatter):
        assert ignored.thread_id is None and admin.turns_of(ignored.id) == 0
    assert fake.bot_messages(admin.quiet) == [] and fake.threads(admin.quiet) == []
    assert admin.answers(admin.general) == []
    # #general's chat has no system prompt: the table's prompt is #support's alone.
    assert not ((await admin.chat(after.id))["chat"].get("params") or {}).get("system")
    assert shown.id != after.id


# -- ratings ------------------------------------------------------------------------------


async def test_thumbs_become_one_rating_per_person_in_open_webui(admin: Admin) -> None:
    fake = admin.fake
    text = marked("rate me")
    thread = admin.mention(text).id
    [shown] = await admin.answered(thread, [expected_reply(asked(text))])
    answer_id = (await admin.history(thread))["currentId"]
    try:
        fake.react(shown.id, admin.mallory, "👍")  # denied by the operator: not a rating
        fake.react(shown.id, admin.ada, "👍")
        fake.react(shown.id, admin.ada, "👎")  # she changes her mind: the latest wins
        await admin.feedbacks_become(answer_id, [(admin.ada, -1)])
        fake.unreact(shown.id, admin.ada, "👎")
        await admin.feedbacks_become(answer_id, [])
        fake.react(shown.id, admin.grace, "👍")
        fake.unreact(shown.id, admin.ada, "👍")  # the 👍 she still had
        fake.react(shown.id, admin.ada, "👍")
        await admin.feedbacks_become(answer_id, [(admin.ada, 1), (admin.grace, 1)])
        await asyncio.sleep(0.5)
        assert sorted(await admin.feedbacks(answer_id)) == [(admin.ada, 1), (admin.grace, 1)]
        assert admin.answers(thread) == [shown] and fake.replies_to(shown.id) == []
    finally:
        for person in (admin.ada, admin.grace):
            fake.unreact(shown.id, person, "👍")
        await admin.feedbacks_become(answer_id, [])


# -- stop and regenerate ------------------------------------------------------------------


async def mid_answer(admin: Admin, thread: str, full: str) -> Message:
    """The answer's message once part of it, not all, is on screen."""
    fake = admin.fake
    await fake.wait_for(
        lambda: any(m.content and m.content != full for m in admin.answers(thread)),
        timeout=60,
        what="part of the answer",
    )
    [partial] = admin.answers(thread)
    return partial


def assert_stopped(message: Message, full: str) -> None:
    """Ends marked stopped, after a beginning of the answer (never the whole of it)."""
    shown, sep, mark = message.content.rpartition("\n\n")
    assert sep and mark == STOPPED_MARK, message.content
    assert full.startswith(shown) and len(shown) < len(full), message.content


async def test_slash_stop_mid_answer_and_the_thread_continues(admin: Admin) -> None:
    fake = admin.fake
    text = marked(f"stop me {SLOW}")
    full = expected_reply(asked(text))
    thread = admin.mention(text).id
    await mid_answer(admin, thread, full)
    fake.interaction(admin.ada, "stop", thread)
    await admin.until(lambda: STOPPED in fake.interaction_said(), "the /stop answer")
    response = fake.interaction_responses[-1]
    assert response.data["flags"] & EPHEMERAL  # only Ada sees it
    await admin.until(lambda: admin.answers(thread)[0].content.endswith(STOPPED_MARK), "stopped")
    [stopped] = admin.answers(thread)
    assert_stopped(stopped, full)
    chat_id = admin.chat_id(thread)
    assert await admin.runtime.client.running_tasks(chat_id) == []  # Open WebUI's task ended

    follow_up = marked("and after that?")
    fake.user_says(thread, admin.ada, follow_up)
    shown = await admin.answered(thread, [stopped.content, expected_reply(asked(follow_up))])
    assert shown[0].id == stopped.id
    path = treecheck.branch(await admin.history(thread))
    assert [m["role"] for m in path] == ["user", "assistant"] * 2
    assert path[2]["parentId"] == path[1]["id"]  # under the stopped answer
    assert path[2]["content"] == asked(follow_up)


async def test_stop_reaction_then_repeat_shows_a_new_answer_in_its_place(admin: Admin) -> None:
    fake = admin.fake
    text = marked(f"tell me twice {SLOW}")
    full = expected_reply(asked(text))
    thread = admin.mention(text).id
    partial = await mid_answer(admin, thread, full)
    fake.react(partial.id, admin.ada, "⏹️")
    await admin.until(lambda: admin.answers(thread)[0].content.endswith(STOPPED_MARK), "the ⏹ stop")
    assert_stopped(admin.answers(thread)[0], full)
    chat_id = admin.chat_id(thread)
    assert await admin.runtime.client.running_tasks(chat_id) == []
    before = await admin.history(thread)
    stopped_answer = before["currentId"]
    question_id = before["messages"][stopped_answer]["parentId"]
    posts = len(fake.calls_of("POST", f"/channels/{thread}/messages"))

    fake.react(partial.id, admin.ada, "🔁")
    [again] = await admin.answered(thread, [full])  # the whole new answer, in its place
    assert again.id == partial.id
    assert len(fake.calls_of("POST", f"/channels/{thread}/messages")) == posts  # no new post
    history = await admin.history(thread)
    siblings = history["messages"][question_id]["childrenIds"]
    assert len(siblings) == 2 and siblings[0] == stopped_answer  # "2/2" in the web UI
    new_answer = siblings[1]
    assert history["currentId"] == new_answer
    assert treecheck.answer_text(history["messages"][new_answer]) == full

    follow_up = marked("and next?")
    fake.user_says(thread, admin.ada, follow_up)
    await admin.answered(thread, [full, expected_reply(asked(follow_up))])
    history = await admin.history(thread)
    path = treecheck.branch(history)
    assert [m["id"] for m in path[:2]] == [question_id, new_answer]
    assert path[2]["parentId"] == new_answer and path[2]["content"] == asked(follow_up)
    assert fake.replies_to(partial.id) == []  # no notice: it was the latest answer
