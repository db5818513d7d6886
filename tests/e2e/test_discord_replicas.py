"""Two ``owui-bridge run`` replicas on one PostgreSQL database, one Discord shard each
(``DISCORD_SHARD_COUNT=2``), against the local Discord server and real Open WebUI.

Each replica hears only its shard's servers (shard 0's also the DMs), so each question
is answered once, by the replica holding its shard. When the replica holding shard 0
is killed mid-answer, the other one (holding only shard 1) finishes that answer in the
same Discord message and answers the follow-up the dead one had stored.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.contract.bridge_fixtures import admin_request, history_of
from tests.e2e.test_discord_cli import TOKEN, base_env
from tests.fakes.discord_server import BOT_USER_ID, FakeDiscord
from tests.faults.judge import active_path, message_text, shown, tree_problems
from tests.harness.bridge_process import BridgeProcess
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI

ADA = "Ada"
EDIT = "PATCH /channels/{channel_id}/messages/{message_id}"
NICK = "Ada Z."  # her name on the server on shard 0 (a nickname comes from that server)


@dataclass(frozen=True)
class Row:
    """One turn as the shared database keeps it."""

    thread: str
    chat_id: str | None
    question: str
    status: str
    runner_pid: int  # the process whose lease it ran under last


class Replicas:
    """Two servers (one per shard) with Ada in each #general, a DM with her, and the
    replicas started on the one database."""

    def __init__(
        self, openwebui: RunningOpenWebUI, fake: FakeDiscord, tmp: Path, database: str
    ) -> None:
        self.openwebui, self.fake, self.tmp, self.database = openwebui, fake, tmp, database
        self.ada = fake.add_user(name="ada", global_name=ADA)
        tag = uuid.uuid4().hex[:6]  # its own Open WebUI folders on the shared server
        self.guild_names = [f"Shard {shard} {tag}" for shard in (0, 1)]
        self.channels = []
        for shard, name in enumerate(self.guild_names):
            guild = fake.add_guild(name, on_shard=(shard, 2))
            fake.add_member(guild, self.ada, nick=NICK if shard == 0 else None)
            self.channels.append(fake.add_channel(guild, "general"))
        self.dm = fake.add_dm(self.ada)
        self.replicas: dict[int, BridgeProcess] = {}

    async def start(self, shard: int) -> BridgeProcess:
        """The replica holding ``shard``, once its /readyz says it is connected."""
        home = self.tmp / f"shard{shard}-{len(self.replicas)}"
        home.mkdir()
        env = base_env(self.openwebui, self.fake, home) | {
            "BRIDGE_DATABASE": self.database,  # the same one for both
            "BRIDGE_LEASE_SECONDS": "5",
            "DISCORD_SHARD_COUNT": "2",
            "DISCORD_SHARD_IDS": str(shard),
            "DISCORD_UPDATE_INTERVAL": "0.5",
        }
        replica = await BridgeProcess(home / "bridge.log").start(env)
        self.replicas[shard] = replica
        ready = await replica.wait_ready("/readyz", 200, timeout=30)
        assert ready.json()["checks"][f"discord shard {shard}"] is True
        return replica

    async def stop_all(self) -> list[int]:
        return [await r.stop() for r in self.replicas.values() if r.running]

    def output(self) -> str:
        return "\n".join(r.output()[-4000:] for r in self.replicas.values())

    def mention(self, shard: int, text: str) -> str:
        """Ada mentions the bot in the server on ``shard``; the thread it opens."""
        return self.fake.user_says(self.channels[shard], self.ada, f"<@{BOT_USER_ID}> {text}").id

    def shown(self, places: list[str]) -> dict[str, list[str]]:
        return {p: [m.content for m in self.fake.bot_messages(p)] for p in places}

    async def wait_shown(self, wanted: dict[str, list[str]], what: str) -> None:
        try:
            await self.fake.wait_for(
                lambda: self.shown(list(wanted)) == wanted, timeout=90, what=what
            )
        except TimeoutError as late:
            raise AssertionError(f"shown: {self.shown(list(wanted))}\n{self.output()}") from late

    async def rows(self) -> list[Row]:
        db = await asyncpg.connect(self.database)
        try:
            found = await db.fetch(
                "SELECT c.thread, c.chat_id, t.platform_message_id, t.status, t.lease_owner"
                " FROM turns t JOIN conversations c ON c.id = t.conversation_id ORDER BY t.id"
            )
        finally:
            await db.close()
        return [
            Row(r[0], r[1], r[2], r[3], int(r[4].rsplit(":", 4)[2]) if r[4] else 0) for r in found
        ]

    async def wait_stored(self, message_id: str) -> None:
        """Until the database holds the question ``message_id`` (queued)."""
        for _ in range(200):
            if any(row.question == message_id for row in await self.rows()):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"question {message_id} never stored:\n{self.output()}")

    async def chat(self, chat_id: str) -> dict[str, Any]:
        response = await asyncio.to_thread(
            admin_request, self.openwebui, "GET", f"/api/v1/chats/{chat_id}"
        )
        data: dict[str, Any] = response.json()
        return data

    async def assert_chat(self, chat_id: str | None, questions: list[str]) -> dict[str, Any]:
        """The chat is a sound tree of question, answer, question, answer… in order."""
        assert chat_id
        chat = await self.chat(chat_id)
        history = history_of(chat)
        assert tree_problems(history) == [], history
        path = active_path(history)
        assert [m.get("role") for m in path] == ["user", "assistant"] * len(questions)
        for i, question in enumerate(questions):
            assert message_text(path[2 * i]) == question
            assert shown(message_text(path[2 * i + 1])) == expected_reply(question)
        return chat

    @property
    def reads_text_so_far(self) -> bool:
        """Open WebUI 0.11.1+: a chat read while its answer is written holds the text so
        far (a replica taking an answer over can read what was already written)."""
        return tuple(int(p) for p in self.openwebui.version.split(".")) >= (0, 11, 1)

    async def tags(self, chat_id: str) -> set[str]:
        response = await asyncio.to_thread(
            admin_request, self.openwebui, "GET", f"/api/v1/chats/{chat_id}/tags"
        )
        return {str(t["name"]) for t in response.json()}

    async def folder_name(self, chat: dict[str, Any]) -> str:
        folder = chat.get("folder_id")
        assert folder, "the chat is in no folder"
        response = await asyncio.to_thread(
            admin_request, self.openwebui, "GET", f"/api/v1/folders/{folder}"
        )
        return str(response.json()["name"])


def question_of(fake: FakeDiscord, thread: str) -> str:
    """The text of the mention that opened ``thread``, without the mention."""
    message = fake.message(thread)
    assert message is not None
    return message.content.removeprefix(f"<@{BOT_USER_ID}> ")


def asked(text: str, name: str = ADA) -> str:
    """The question as the model sees it: the asker's name, the text without the mention."""
    return f"{name}: {text}"


@pytest.fixture
async def world(
    openwebui: RunningOpenWebUI, tmp_path: Path, postgres_url: str
) -> AsyncIterator[Replicas]:
    async with FakeDiscord() as fake:
        replicas = Replicas(openwebui, fake, tmp_path, postgres_url)
        try:
            yield replicas
        finally:
            fake.release_all()
            await replicas.stop_all()


async def test_questions_on_both_shards_and_in_a_dm_are_each_answered_once(
    world: Replicas,
) -> None:
    fake = world.fake
    a, b = await world.start(0), await world.start(1)
    threads = [world.mention(shard, f"first on shard {shard}") for shard in (0, 1)]
    fake.user_says(world.dm, world.ada, "first in a DM")
    places = [*threads, world.dm]
    names = {threads[0]: NICK, threads[1]: ADA, world.dm: ADA}
    firsts = ["first on shard 0", "first on shard 1", "first in a DM"]
    questions = dict(zip(places, firsts, strict=True))
    await world.wait_shown(
        {p: [expected_reply(asked(questions[p], names[p]))] for p in places}, "three answers"
    )
    for place in places:
        fake.user_says(place, world.ada, f"then in {place}")
    asked_in = {p: [asked(questions[p], names[p]), asked(f"then in {p}", names[p])] for p in places}
    wanted = {p: [expected_reply(q) for q in asked_in[p]] for p in places}
    await world.wait_shown(wanted, "the follow-ups' answers")

    codes = await world.stop_all()
    assert codes == [0, 0], world.output()
    assert world.shown(places) == wanted  # each once: nothing more came meanwhile
    assert all(TOKEN not in r.output() for r in world.replicas.values())
    rows = await world.rows()
    # One turn per question, done, on the replica holding its shard (DMs: shard 0's).
    holder = {threads[0]: a.proc.pid, threads[1]: b.proc.pid, world.dm: a.proc.pid}
    assert sorted((r.thread, r.status, r.runner_pid) for r in rows) == sorted(
        (p, "done", holder[p]) for p in places for _ in (1, 2)
    ), rows
    for place in places:
        (chat,) = {row.chat_id for row in rows if row.thread == place}
        await world.assert_chat(chat, asked_in[place])


async def written_by(world: Replicas, writer: BridgeProcess, question: str) -> str:
    """The thread of a mention on shard 0 whose answer ``writer`` (holding shard 0) is
    writing, its first part shown and its edits held."""
    fake = world.fake
    thread = world.mention(0, question)
    # Set before this test lets the replicas run: no edit of the answer passes.
    fake.hold(EDIT, when=lambda call: call.path.startswith(f"/channels/{thread}/"))
    await fake.wait_for(lambda: fake.held, timeout=30, what="an edit of the answer")
    [row] = [r for r in await world.rows() if r.question == thread]
    assert row.runner_pid == writer.proc.pid, world.output()  # its shard's replica has it
    return thread


async def test_a_killed_replicas_answer_is_finished_in_place_by_the_other(
    world: Replicas,
) -> None:
    fake = world.fake
    a, b = await world.start(0), await world.start(1)
    q2 = "and then? [[words=20]]"
    # The answer's first part is posted; its next edit waits (held), so the replica
    # holding shard 0 is still writing it when it is killed, however slow the machine.
    thread = await written_by(world, a, "long one [[words=60]] [[delay=0.1]]")
    [cut] = fake.bot_messages(thread)
    asked_in = [asked(question_of(fake, thread), NICK), asked(q2, NICK)]
    wanted = [expected_reply(q) for q in asked_in]
    assert cut.content != wanted[0] and wanted[0].startswith(shown(cut.content))  # part of it
    follow_up = fake.user_says(thread, world.ada, q2).id
    await world.wait_stored(follow_up)  # queued behind it, by the replica about to die
    a.kill()
    await a.wait(10)
    fake.release(EDIT)  # the killed replica's edit never lands

    await world.wait_shown({thread: wanted}, "both answers, from the other replica")
    assert await b.stop() == 0, world.output()

    # The person sees the cut answer completed in its own message, then the follow-up's.
    messages = fake.bot_messages(thread)
    assert [m.content for m in messages] == wanted
    assert messages[0].id == cut.id
    rows = await world.rows()
    rows = [r for r in rows if r.thread == thread]
    assert [(r.question, r.status, r.runner_pid) for r in rows] == [
        (thread, "done", b.proc.pid),
        (follow_up, "done", b.proc.pid),
    ]
    chat = await world.assert_chat(rows[0].chat_id, asked_in)
    # Filed under the server and channel as people know them, though the replica that
    # finished it never had that server on its gateway.
    server = world.guild_names[0]
    assert await world.folder_name(chat) == f"Discord · {server} \u203a #general"
    assert await world.tags(rows[0].chat_id) == {"Discord", f"{server} \u203a general", NICK}


STOPPED_MARK = "_(stopped)_"  # the line a stopped answer ends with


async def test_a_stop_reaches_the_replica_that_took_the_answer_over(world: Replicas) -> None:
    """⏹ on an answer the other replica took over: the reaction comes on the answer's
    server's shard, to the replica restarted there, which is not writing it."""
    fake = world.fake
    a, b = await world.start(0), await world.start(1)
    # A few words, then the model goes quiet: the answer stays under way until stopped.
    thread = await written_by(world, a, "stop me [[words=60]] [[stall]]")
    fake.release(EDIT)
    full = expected_reply(asked(question_of(fake, thread), NICK))
    a.kill()
    await a.wait(10)
    [partial] = fake.bot_messages(thread)
    seen = shown(partial.content)  # what Ada saw of it
    assert seen and full.startswith(seen) and seen != full

    async def taken_over() -> bool:
        return [r.runner_pid for r in await world.rows() if r.thread == thread] == [b.proc.pid]

    for _ in range(200):  # the other replica takes the turn over (a few seconds)
        if await taken_over():
            break
        await asyncio.sleep(0.1)
    assert await taken_over(), world.output()
    await world.start(0)  # shard 0 again (a restarted pod); the turn stays the other's
    fake.react(partial.id, world.ada, "⏹️")

    def stopped() -> bool:
        return fake.bot_messages(thread)[0].content.endswith(STOPPED_MARK)

    try:
        await fake.wait_for(stopped, timeout=60, what="the answer stopped")
    except TimeoutError as late:
        raise AssertionError(f"{world.shown([thread])}\n{world.output()}") from late
    [message] = fake.bot_messages(thread)
    assert message.id == partial.id
    text, _, mark = message.content.rpartition("\n\n")
    assert mark == STOPPED_MARK and full.startswith(text) and text != full, message.content
    if world.reads_text_so_far:
        assert text.startswith(seen)  # what Ada saw stays
    # Before 0.11.1 a chat read while its answer is written has none of the text yet:
    # the replica that took it over has nothing to show, and the mark replaces it.
    [row] = [r for r in await world.rows() if r.thread == thread]
    assert (row.status, row.runner_pid) == ("stopped", b.proc.pid)
    assert row.chat_id
    path = active_path(history_of(await world.chat(row.chat_id)))
    assert [m.get("role") for m in path] == ["user", "assistant"]
    assert full.startswith(shown(message_text(path[1])))  # a beginning, as in Discord
