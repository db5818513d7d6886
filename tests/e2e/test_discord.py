"""The Discord adapter end to end: the real discord.py client, as ``owui-bridge run``
builds it, talking to the local Discord-compatible server (``tests/fakes``), the
real core, real Open WebUI and a real SQLite file.

Judged only by what a person sees (the fake's channel views) and what is stored
(the Open WebUI chat, the bridge's database), never by adapter internals.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.discord.app import DiscordAdapter, intents, make_client
from adapters.discord.settings import DiscordSettings
from adapters.runtime import Runtime, open_runtime
from bridge.channels import load_channels
from tests import treecheck
from tests.contract.bridge_fixtures import fetch_chat, history_of, settings_for
from tests.fakes.discord_server import BOT_USER_ID, FakeDiscord, Message, point_discord_py_at
from tests.harness.model_server import TITLE, expected_reply
from tests.harness.openwebui import RunningOpenWebUI
from tests.limit_shapes import rejoined

TOKEN = "e2e-discord-token"
ADA = "Ada"  # the display name the model sees before each question
EDIT = "PATCH /channels/{channel_id}/messages/{message_id}"
MENTION = f"<@{BOT_USER_ID}>"
NO_MENTIONS: dict[str, list[str]] = {"parse": []}


@dataclass
class Harness:
    fake: FakeDiscord
    runtime: Runtime
    adapter: DiscordAdapter
    guild: str
    general: str
    ada: str
    grace: str
    admins: str  # a role

    def mention(self, text: str) -> Message:
        """Ada mentions the bot in #general: the question opens a thread (its id)."""
        return self.fake.user_says(self.general, self.ada, f"{MENTION} {text}")

    async def answers(
        self, channel: str, expected: list[str], *, timeout: float = 60, settle: float = 0.5
    ) -> list[Message]:
        """Wait until the bot's messages in ``channel`` show exactly ``expected`` and the
        bridge is idle; then a little longer, so a late duplicate would show too."""

        def shown() -> list[str]:
            return [m.content for m in self.fake.bot_messages(channel)]

        deadline = time.monotonic() + timeout
        while not (shown() == expected and self.runtime.bridge.idle):
            if time.monotonic() > deadline:
                raise AssertionError(f"{channel} shows {shown()!r}, expected {expected!r}")
            await asyncio.sleep(0.05)
        await asyncio.sleep(settle)
        assert shown() == expected
        return self.fake.bot_messages(channel)

    def chat_ids(self, channel: str) -> list[str]:
        """Open WebUI chats the bridge keeps for ``channel``, oldest first (a DM's
        retired conversations included)."""
        db = sqlite3.connect(f"file:{self.runtime.settings.bridge_database}?mode=ro", uri=True)
        try:
            rows = db.execute(
                "select chat_id from conversations where channel = ? order by id", (channel,)
            ).fetchall()
        finally:
            db.close()
        return [str(chat_id) for (chat_id,) in rows]


@asynccontextmanager
async def discord_bridge(
    server: RunningOpenWebUI,
    tmp: Path,
    *,
    bridge: dict[str, Any] | None = None,
    channels: Callable[[str], list[dict[str, Any]]] | None = None,
) -> AsyncIterator[Harness]:
    """``bridge``: core settings beyond the tests' own; ``channels``: ``[[channels]]``
    made from #general's id."""
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Lab")
        general = fake.add_channel(guild, "general")
        ada = fake.add_user(name="ada", global_name=ADA)
        fake.add_member(guild, ada)
        grace = fake.add_user(name="grace", global_name="Grace")
        fake.add_member(guild, grace)
        # Before the bot connects: the fake sends no GUILD_ROLE_CREATE for later roles.
        admins = fake.add_role(guild, name="admins")
        settings = DiscordSettings(
            bot_token=SecretStr(TOKEN),
            api_url=fake.api_url,
            gateway_url=fake.gateway_url,
            update_interval=0.2,
        )
        # discord.py's REST base and gateway are process-wide: restored afterwards.
        with point_discord_py_at(fake):
            core = settings_for(server, tmp / "discord.db", **(bridge or {}))
            rules = load_channels(core, {"channels": channels(general) if channels else []})
            async with open_runtime(core, channels=rules) as runtime:
                # The client ``owui-bridge run`` makes, with a short wait for servers.
                client = make_client(intents(), guild_ready_timeout=0.05)
                adapter = DiscordAdapter(
                    runtime.bridge, settings, places=runtime.store, client=client
                )
                await adapter.start()
                try:
                    yield Harness(fake, runtime, adapter, guild, general, ada, grace, admins)
                finally:
                    await adapter.stop()
                    await runtime.bridge.drain(5)
                    await adapter.close()


Make = Callable[[], Any]


@pytest.fixture
def make(openwebui: RunningOpenWebUI, tmp_path: Path) -> Make:
    return lambda: discord_bridge(openwebui, tmp_path)


def asked(text: str) -> str:
    """A question as the model sees it: the asker's name, the text without the mention."""
    return f"{ADA}: {text}"


def chat_history(openwebui: RunningOpenWebUI, chat_id: str) -> dict[str, Any]:
    history = history_of(fetch_chat(openwebui, chat_id))
    assert treecheck.problems(history) == [], history
    return history


async def wait_for_title(openwebui: RunningOpenWebUI, chat_id: str, timeout: float = 30) -> str:
    """Open WebUI names a chat in the background, after the first answer."""
    deadline = time.monotonic() + timeout
    title = ""
    while time.monotonic() < deadline:
        title = str(fetch_chat(openwebui, chat_id)["title"])
        if title == TITLE:
            break
        await asyncio.sleep(0.5)
    return title


def assert_no_pings(fake: FakeDiscord, *channels: str) -> None:
    """Every create and edit the bot made carried mentions off, and nobody was pinged."""
    for channel in channels:
        for message in fake.bot_messages(channel):
            assert message.allowed_mentions, message
            assert all(am == NO_MENTIONS for am in message.allowed_mentions), message
        assert fake.pings(channel) == []


async def test_mention_opens_a_thread_and_the_follow_up_continues_the_chat(
    openwebui: RunningOpenWebUI, make: Make
) -> None:
    q1 = "what is the plan? [[words=60]] [[delay=0.1]]"
    q2 = "and then?"
    async with make() as h:
        question = h.mention(q1)
        thread = question.id  # a thread opened from a message takes its id
        [a1] = await h.answers(thread, [expected_reply(asked(q1))])
        h.fake.user_says(thread, h.ada, q2)  # in the thread, no mention
        shown = await h.answers(thread, [expected_reply(asked(q1)), expected_reply(asked(q2))])

        [opened] = h.fake.threads(h.general)
        assert opened["id"] == thread and question.thread_id == thread
        assert opened["name"] == q1  # named from the question
        assert h.fake.typing_in(thread)  # typing before the first text
        assert a1.edits >= 2, a1.versions  # streamed: posted, then edited as text came
        assert shown[0].id == a1.id  # the first answer stayed one message
        assert h.fake.bot_messages(h.general) == []  # nothing answered in the channel
        assert_no_pings(h.fake, thread)

        [chat_id] = h.chat_ids(thread)
        history = chat_history(openwebui, chat_id)
        chain = treecheck.branch(history)
        assert [m["role"] for m in chain] == ["user", "assistant"] * 2
        assert [m["content"] for m in chain[::2]] == [asked(q1), asked(q2)]
        assert [treecheck.answer_text(m) for m in chain[1::2]] == [
            expected_reply(asked(q1)),
            expected_reply(asked(q2)),
        ]
        assert len(history["messages"]) == 4
        assert await wait_for_title(openwebui, chat_id) == TITLE


async def test_dm_conversation_and_new_start_a_second_chat(
    openwebui: RunningOpenWebUI, make: Make
) -> None:
    async with make() as h:
        dm = h.fake.add_dm(h.ada)
        h.fake.user_says(dm, h.ada, "hello in private")
        before = [expected_reply(asked("hello in private"))]
        await h.answers(dm, before)
        h.fake.user_says(dm, h.ada, "second private")
        before.append(expected_reply(asked("second private")))
        await h.answers(dm, before)
        [old_chat] = h.chat_ids(dm)
        old = chat_history(openwebui, old_chat)
        assert [m["content"] for m in treecheck.branch(old)[::2]] == [
            asked("hello in private"),
            asked("second private"),
        ]

        h.fake.interaction(h.ada, "new", dm)
        await h.fake.wait_for(lambda: h.fake.interaction_said(), what="the /new response")
        [response] = h.fake.interaction_responses
        assert response.type == 5  # acknowledged at once (Discord's 3 s), then said
        assert h.fake.interaction_said() == ["Done: your next message starts a new conversation."]
        assert response.data["flags"] & (1 << 6)  # only Ada sees it
        h.fake.user_says(dm, h.ada, "a fresh start")
        await h.answers(dm, [*before, expected_reply(asked("a fresh start"))])

        first, second = h.chat_ids(dm)
        assert first == old_chat and second != old_chat
        assert chat_history(openwebui, old_chat) == old  # the old chat is untouched
        new = chat_history(openwebui, second)
        assert [m["content"] for m in treecheck.branch(new)] == [
            asked("a fresh start"),
            expected_reply(asked("a fresh start")),
        ]
        assert h.fake.threads() == []  # DMs open no threads
        assert_no_pings(h.fake, dm)


async def test_a_6000_character_answer_with_code_is_split_and_adds_up(
    openwebui: RunningOpenWebUI, make: Make
) -> None:
    q = "huge [[chars=6000]] [[code]] [[delay=0]]"
    answer = expected_reply(asked(q))
    assert len(answer) == 6000 and answer.count("```") == 4
    async with make() as h:
        thread = h.mention(q).id

        def done() -> bool:
            parts = [m.content for m in h.fake.bot_messages(thread)]
            return bool(parts) and rejoined(parts) == answer and h.runtime.bridge.idle

        await h.fake.wait_for(done, timeout=60, what="the whole answer")
        await asyncio.sleep(0.5)
        parts = [m.content for m in h.fake.bot_messages(thread)]

        assert len(parts) >= 3
        assert all(len(part) <= 2000 for part in parts), [len(p) for p in parts]
        assert all(part.count("```") % 2 == 0 for part in parts)  # every fence balanced
        for part in parts[:-1]:
            assert part[-1].isspace() or part.endswith("```"), part[-30:]  # never mid-word
        [chat_id] = h.chat_ids(thread)
        chain = treecheck.branch(chat_history(openwebui, chat_id))
        stored = treecheck.answer_text(chain[-1])
        assert rejoined(parts) == stored == answer
        assert_no_pings(h.fake, thread)


@pytest.mark.parametrize("over", [0, 1], ids=["at the limit", "one over"])
async def test_an_answer_of_2000_characters_is_one_message_and_of_2001_two(
    make: Make, over: int
) -> None:
    q = f"at the edge [[chars={2_000 + over}]] [[delay=0]]"
    answer = expected_reply(asked(q))
    assert len(answer) == 2_000 + over  # Discord's content limit, and one more
    assert not answer[-1].isspace()  # Discord trims a message's trailing whitespace
    async with make() as h:
        thread = h.mention(q).id

        def parts() -> list[str]:
            return [m.content for m in h.fake.bot_messages(thread)]

        await h.fake.wait_for(
            lambda: rejoined(parts()) == answer and h.runtime.bridge.idle,
            timeout=60,
            what="the whole answer",
        )
        await asyncio.sleep(0.5)
        assert len(parts()) == 1 + over
        assert all(len(part) <= 2_000 for part in parts()), [len(p) for p in parts()]
        sent = [c.body.get("content") for c in h.fake.calls if isinstance(c.body, dict)]
        assert all(len(content or "") <= 2_000 for content in sent)  # none refused on the way


async def test_a_429_on_an_edit_still_completes_the_answer(make: Make) -> None:
    q = "under pressure [[words=60]] [[delay=0.05]]"
    async with make() as h:
        h.fake.rate_limit_next(EDIT, retry_after=0.5, times=2)
        thread = h.mention(q).id
        [answer] = await h.answers(thread, [expected_reply(asked(q))])

        limited = [c for c in h.fake.rate_limited if c.key == EDIT]
        assert len(limited) == 2  # both 429s happened and were waited out
        assert all(c.path.startswith(f"/channels/{thread}/") for c in limited)
        assert answer.edits >= 1  # the answer still arrived by edits, in one message


async def test_a_gateway_drop_and_a_replayed_message_give_one_answer(
    openwebui: RunningOpenWebUI, make: Make
) -> None:
    q1 = "keep going [[words=80]] [[delay=0.1]]"
    q2 = "after the drop"
    expected = [expected_reply(asked(q1))]
    async with make() as h:
        fake = h.fake
        thread = h.mention(q1).id
        # Mid-answer: part of it on screen.
        await fake.wait_for(
            lambda: any(m.content != expected[0] for m in fake.bot_messages(thread)),
            timeout=30,
            what="part of the answer",
        )
        fake.drop()
        await fake.wait_for(lambda: fake.resumes, timeout=30, what="a RESUME")
        # What a resume from a stale sequence number delivers: the question (and the
        # bot's own message) again, with the same ids.
        assert fake.replay_last(10) >= 2
        await h.answers(thread, expected)
        fake.user_says(thread, h.ada, q2)
        expected.append(expected_reply(asked(q2)))
        await h.answers(thread, expected, settle=1.0)

        assert len(fake.threads()) == 1
        assert fake.bot_messages(h.general) == []  # no second answer to anything
        [chat_id] = h.chat_ids(thread)
        history = chat_history(openwebui, chat_id)
        assert len(history["messages"]) == 4  # two turns, no extra branch
        assert [m["content"] for m in treecheck.branch(history)[::2]] == [asked(q1), asked(q2)]
        assert await h.adapter.ready()  # still connected after the resume


async def test_model_output_never_pings_anyone(make: Make) -> None:
    async with make() as h:
        # The model echoes the question at the start of its answer.
        q = f"@everyone @here meet <@{h.grace}> <@&{h.admins}>"
        thread = h.mention(q).id
        seen = "@everyone @here meet @Grace @admins"  # mentions made readable for the model
        [answer] = await h.answers(thread, [expected_reply(asked(seen))])

        assert "@everyone @here" in answer.content  # the answer does say it…
        assert_no_pings(h.fake, thread)  # …with mentions off on every create and edit
        assert answer.mention_everyone is False and answer.mentions == []


async def test_another_bots_message_gets_no_answer(make: Make) -> None:
    async with make() as h:
        other = h.fake.add_user(name="otherbot", global_name="Other", bot=True)
        h.fake.add_member(h.guild, other)
        h.fake.user_says(h.general, other, f"{MENTION} loop with me?")
        thread = h.mention("hi").id
        await h.answers(thread, [expected_reply(asked("hi"))])
        # In a conversation thread too: the bot's message comes first, then a person's.
        h.fake.user_says(thread, other, "me again, no mention needed here?")
        h.fake.user_says(thread, h.ada, "still there?")
        await h.answers(
            thread, [expected_reply(asked("hi")), expected_reply(asked("still there?"))], settle=1.0
        )
        assert len(h.fake.threads()) == 1  # no thread from the other bot's mention
        assert h.fake.bot_messages(h.general) == []
