"""Who may ask on Discord, end to end: ``owui-bridge run`` as a process with access
settings, the local Discord-compatible server, real Open WebUI.

One process per Open WebUI version serves every scenario (each with its own
people, since rate limits and notices are per person). Judged by what people
see (answers, replies under their messages, threads) and what is stored (Open
WebUI's chats, the bridge's database).

The world: guild Lab (served) with #general (allowed), #random (not on the
channel list) and the role "staff" (the one allowed role); guild Elsewhere (not
served) with #lobby. DMs are off; Mallory is denied though she is staff.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.policy import Refusal
from tests.contract.bridge_fixtures import all_chats, fetch_chat
from tests.fakes.discord_server import BOT_USER_ID, FakeDiscord, Message
from tests.faults.discord_process import DiscordFaults
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI

MENTION = f"<@{BOT_USER_ID}>"
STAFF = ["ada", "mallory", "carol", "dave", "frank", "grace", "heidi", "ivan", "bert"]
NO_ROLE = ["bob", "judy"]


# What a refused person reads, written here (not taken from bridge.admission), so a
# changed or broken notice shows up as a failure. The limits are the defaults:
# 20 questions a minute, 32,000 characters, 5 waiting per thread.
NOTICES = {
    Refusal.DENIED_USER: "Sorry, you don't have access to this assistant.",
    Refusal.USER: "Sorry, you don't have access to this assistant.",
    Refusal.CHANNEL: "I'm not available in this channel.",
    Refusal.DIRECT: "I don't answer direct messages. Please ask in a channel where I'm available.",
    Refusal.EMPTY: "Put your question in the same message as the mention, and I'll answer it.",
    Refusal.RATE: "You've asked 20 questions in the last minute. Please wait a moment.",
    Refusal.BUSY: (
        "I answer one question at a time, and 5 are already waiting in this thread."
        " Please ask again once they're answered."
    ),
}


def notice(refusal: Refusal, *, text: str = "") -> str:
    """What a person refused for ``refusal`` is told (the first time)."""
    if refusal is Refusal.TOO_LONG:
        return (
            f"Your message is {len(text):,} characters long; I can take up to 32,000."
            " Please shorten it and ask again."
        )
    return NOTICES[refusal]


class Access:
    """The scenario world around one running bridge."""

    def __init__(self, base: DiscordFaults) -> None:
        self.base, self.fake = base, base.fake
        fake = self.fake
        self.lab, self.general = base.guild, base.general
        self.random = fake.add_channel(self.lab, "random")
        self.staff = fake.add_role(self.lab, name="staff")
        self.elsewhere = fake.add_guild("Elsewhere")
        self.lobby = fake.add_channel(self.elsewhere, "lobby")
        self.users: dict[str, str] = {"ada": base.ada}
        fake.set_roles(self.lab, base.ada, [self.staff])
        for name in [*STAFF[1:], *NO_ROLE]:
            self.users[name] = fake.add_user(name=name, global_name=name.title())
            fake.add_member(self.lab, self.users[name], roles=[self.staff] if name in STAFF else [])
        self.users["erin"] = fake.add_user(name="erin", global_name="Erin")
        fake.add_member(self.elsewhere, self.users["erin"])
        base.env |= {
            "BRIDGE_ALLOWED_WORKSPACES": self.lab,
            "BRIDGE_ALLOWED_CHANNELS": self.general,
            "BRIDGE_DENIED_USERS": self.users["mallory"],
            "BRIDGE_ALLOWED_ROLES": self.staff,
            "BRIDGE_ALLOW_DMS": "false",
        }

    # -- people act -------------------------------------------------------------

    def say(
        self, who: str, channel: str, text: str, *, mention: bool = True, attachments: int = 0
    ) -> Message:
        body = f"{MENTION} {text}" if mention else text
        return self.fake.user_says(channel, self.users[who], body, attachments=attachments)

    async def barrier(self) -> None:
        """Everything delivered before now has been judged: messages are judged in
        delivery order, and Bert's bare mention always gets its hint."""
        asked = self.fake.user_says(self.general, self.users["bert"], MENTION)
        await self.replies(asked, [notice(Refusal.EMPTY)])

    # -- what people see ------------------------------------------------------------

    def notices(self, message: Message) -> list[str]:
        return [m.content for m in self.fake.replies_to(message.id)]

    async def replies(self, message: Message, expected: list[str], timeout: float = 30) -> None:
        """Wait until the bot's replies to ``message`` are exactly ``expected``."""
        await self.fake.wait_for(
            lambda: self.notices(message) == expected,
            timeout=timeout,
            what=f"replies {expected!r} (shown: {self.notices(message)!r})",
        )

    def answers(self, channel: str) -> list[str]:
        """The answers shown in ``channel``: the bot's messages that reply to no one."""
        return [m.content for m in self.fake.bot_messages(channel) if m.reference is None]

    async def answered(self, channel: str, expected: list[str], timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while self.answers(channel) != expected:
            if time.monotonic() > deadline:
                logs = "".join(p.output() for p in self.base.processes)[-4000:]
                raise AssertionError(f"{channel}: {self.answers(channel)!r}\n{logs}")
            await asyncio.sleep(0.1)

    # -- what is stored ---------------------------------------------------------------

    def stored(self, message: Message) -> bool:
        with sqlite3.connect(f"file:{self.base.database}?mode=ro", uri=True) as db:
            rows = db.execute(
                "select 1 from turns where platform_message_id = ?", (message.id,)
            ).fetchall()
        return bool(rows)

    def chat_of(self, thread: str) -> str:
        return self.base.chat_id(thread)

    async def chats_with(self, marker: str) -> int:
        """How many of the Open WebUI user's chats contain ``marker``."""
        chats = await all_chats(self.base.openwebui)
        return sum(marker in json.dumps(chat) for chat in chats)

    async def fetch_chat(self, chat_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(fetch_chat, self.base.openwebui, chat_id)

    async def refused(self, message: Message) -> None:
        """No thread opened from it, no answer, nothing stored, no chat in Open WebUI."""
        assert message.thread_id is None and message.id not in self.fake.channels
        assert self.answers(message.id) == []
        assert not self.stored(message)
        assert await self.chats_with(marker_of(message)) == 0


def marked(text: str) -> str:
    """``text`` with a marker no other question has, to find its chat by."""
    return f"{text} m{uuid.uuid4().hex[:12]}"


def marker_of(message: Message) -> str:
    return message.content.rsplit(" ", 1)[-1]


def asked(who: str, text: str) -> str:
    """The question as the model sees it: the asker's name, then the text."""
    return f"{who.title()}: {text}"


@pytest.fixture(scope="module")
async def world(
    openwebui: RunningOpenWebUI, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Access]:
    async with FakeDiscord() as fake:
        base = DiscordFaults(openwebui, fake, Path(tmp_path_factory.mktemp("discord-access")))
        access = Access(base)
        try:
            await base.start()
            yield access
        finally:
            fake.release_all()
            await base.stop_all()


async def test_an_allowed_user_with_the_role_is_answered(world: Access) -> None:
    text = marked("what is the plan?")
    question = world.say("ada", world.general, text)
    thread = question.id
    await world.answered(thread, [expected_reply(asked("ada", text))])
    assert world.stored(question)
    assert await world.chats_with(marker_of(question)) == 1  # the check below can see chats


@pytest.mark.parametrize(
    ("who", "where", "refusal"),
    [
        ("bob", "general", Refusal.USER),  # no allowed role
        ("mallory", "general", Refusal.DENIED_USER),  # denied, though staff
        ("carol", "random", Refusal.CHANNEL),  # a channel not on the list
    ],
)
async def test_a_refused_person_gets_one_notice_and_no_answer(
    world: Access, who: str, where: str, refusal: Refusal
) -> None:
    channel = world.general if where == "general" else world.random
    first = world.say(who, channel, marked("first try"))
    await world.replies(first, [notice(refusal)])
    second = world.say(who, channel, marked("second try"))
    await world.barrier()
    assert world.notices(second) == []  # one notice per person per hour
    for message in (first, second):
        await world.refused(message)


async def test_a_dm_with_dms_off_gets_the_notice_and_no_answer(world: Access) -> None:
    dm = world.fake.add_dm(world.users["dave"])
    question = world.say("dave", dm, marked("privately?"), mention=False)
    await world.replies(question, [notice(Refusal.DIRECT)])
    assert world.answers(dm) == []
    await world.refused(question)


async def test_a_guild_not_served_gets_silence(world: Access) -> None:
    question = world.say("erin", world.lobby, marked("hello?"))
    await world.barrier()
    assert world.fake.bot_messages(world.lobby) == []  # not even a notice
    await world.refused(question)


async def test_each_message_in_a_thread_is_judged_by_its_author(world: Access) -> None:
    opening = marked("shall we?")
    thread = world.say("ada", world.general, opening).id
    await world.answered(thread, [expected_reply(asked("ada", opening))])
    intruder = world.say("judy", thread, marked("and me?"), mention=False)
    await world.replies(intruder, [notice(Refusal.USER)])
    follow_up = marked("and then?")
    world.say("ada", thread, follow_up, mention=False)
    answers = [expected_reply(asked("ada", opening)), expected_reply(asked("ada", follow_up))]
    await world.answered(thread, answers)
    assert not world.stored(intruder)
    chat = await world.fetch_chat(world.chat_of(thread))
    assert marker_of(intruder) not in json.dumps(chat)  # the chat holds Ada's turns only
    assert await world.chats_with(marker_of(intruder)) == 0


async def test_a_bare_mention_gets_the_hint_and_opens_no_thread(world: Access) -> None:
    question = world.fake.user_says(world.general, world.users["heidi"], MENTION)
    await world.replies(question, [notice(Refusal.EMPTY)])
    assert world.fake.calls_of("POST", f"/channels/{world.general}/messages/{question.id}/*") == []
    assert question.thread_id is None and not world.stored(question)


async def test_a_question_too_long_gets_the_refusal(world: Access) -> None:
    text = marked("x" * 40_000)  # Discord's own limit is 2,000; the gateway delivers it
    question = world.say("grace", world.general, text)
    await world.replies(question, [notice(Refusal.TOO_LONG, text=text)])
    await world.refused(question)


async def test_the_21st_question_in_a_minute_is_refused(world: Access) -> None:
    questions = [marked(f"quick {i} [[words=2]]") for i in range(20 + 1)]
    sent = [world.say("frank", world.general, text) for text in questions]
    *taken, over = sent
    await world.replies(over, [notice(Refusal.RATE)])
    for message, text in zip(taken, questions, strict=False):
        await world.answered(message.id, [expected_reply(asked("frank", text))])
        assert world.notices(message) == []
    await world.refused(over)


async def test_seven_at_once_in_one_thread_five_answered_two_told_to_wait(
    world: Access,
) -> None:
    fake = world.fake
    # The first answer starts late, so all seven are in while it runs.
    first = marked("first [[first=4]] [[words=3]]")
    thread = world.say("ivan", world.general, first).id
    await fake.wait_for(lambda: thread in fake.channels, timeout=30, what="the thread")
    rest = [marked(f"more {i} [[words=3]]") for i in range(2, 8)]
    sent = [world.say("ivan", thread, text, mention=False) for text in rest]
    busy = notice(Refusal.BUSY)
    await world.replies(sent[-2], [busy])
    await world.replies(sent[-1], [busy])
    answered = [first, *rest[:4]]
    await world.answered(thread, [expected_reply(asked("ivan", text)) for text in answered])
    assert all(world.notices(m) == [] for m in sent[:4])
    chat = json.dumps(await world.fetch_chat(world.chat_of(thread)))
    assert all(marker_of(m) not in chat for m in sent[-2:])
    assert sum(marker_of(m) in chat for m in sent[:4]) == 4
    for message in sent[-2:]:
        assert not world.stored(message)
