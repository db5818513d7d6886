"""The bridge as a real ``owui-bridge run`` process serving Discord, with Discord as
the local Discord-compatible server (``FakeDiscord``) in the test's own loop.

A scenario starts the process, has a person post, injects a fault (SIGKILL, a held
Discord call), starts the bridge again on the same database file, and judges what
the thread shows (the fake's views) and what Open WebUI stored — never bridge
internals. ``judge.judge`` counts the answers; it reads Slack-shaped messages, so
each Discord message is shown to it as one (``as_seen``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from tests.contract.bridge_fixtures import fetch_chat, history_of
from tests.fakes import slack_server
from tests.fakes.discord_server import BOT_USER_ID, FakeDiscord
from tests.fakes.discord_server import Message as DiscordMessage
from tests.faults.judge import Verdict, active_path, judge, message_text, shown, tree_problems
from tests.harness.bridge_process import BridgeProcess, bridge_env
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI, free_port

TOKEN = "faults-discord-token"
ADA = "Ada"  # the display name the model sees before each question
START_TIMEOUT = 30.0


def as_seen(message: DiscordMessage) -> slack_server.Message:
    """A Discord message as the judge reads one: its id orders it (snowflakes grow with
    time); Discord has no stream state, so whether it is complete is up to its text."""
    return slack_server.Message(
        channel=message.channel_id, ts=message.id, user=BOT_USER_ID, text=message.content
    )


class DiscordFaults:
    """One scenario's world: a FakeDiscord server with Ada in #general, a database
    file, and the bridge processes started on it."""

    def __init__(self, openwebui: RunningOpenWebUI, fake: FakeDiscord, tmp: Path) -> None:
        self.openwebui, self.fake, self.tmp = openwebui, fake, tmp
        self.database = tmp / "bridge.db"
        self.guild = fake.add_guild("Lab")
        self.general = fake.add_channel(self.guild, "general")
        self.ada = fake.add_user(name="ada", global_name=ADA)
        fake.add_member(self.guild, self.ada)
        self.processes: list[BridgeProcess] = []
        self.env = bridge_env(openwebui, self.database) | {
            "OPENWEBUI_API_KEY": openwebui.jwt,  # a JWT: live events
            "DISCORD_BOT_TOKEN": TOKEN,
            "DISCORD_API_URL": fake.api_url,
            "DISCORD_GATEWAY_URL": fake.gateway_url,
            "DISCORD_UPDATE_INTERVAL": "0.5",
        }

    @property
    def version(self) -> str:
        return self.openwebui.version

    async def start(self) -> BridgeProcess:
        """Start the bridge (again); returns once its /readyz says ready (gateway READY,
        /new registered, earlier turns handed to the queue)."""
        log = self.tmp / f"bridge-{len(self.processes) + 1}.log"
        process = BridgeProcess(log, cwd=self.tmp)
        self.processes.append(process)
        await process.start(self.env | {"BRIDGE_HTTP_PORT": str(free_port())})
        await process.wait_ready("/readyz", 200, timeout=START_TIMEOUT)
        return process

    async def kill(self, process: BridgeProcess) -> None:
        process.kill()
        await process.wait(10)

    async def stop_all(self) -> None:
        for process in self.processes:
            if process.running:
                await process.stop()

    def mention(self, text: str) -> str:
        """Ada mentions the bot in #general; returns the thread the bot opens from it."""
        return self.fake.user_says(self.general, self.ada, f"<@{BOT_USER_ID}> {text}").id

    def say_in(self, thread: str, text: str) -> str:
        """Ada writes in a thread (no mention); returns the message id."""
        return self.fake.user_says(thread, self.ada, text).id

    def replies(self, thread: str) -> list[slack_server.Message]:
        return [as_seen(m) for m in self.fake.bot_messages(thread)]

    async def wait_partial(self, thread: str, question: str) -> str:
        """Wait until part of the answer to ``question`` is on screen; its message id."""
        expected = expected_reply(question)

        def partial() -> str | None:
            for message in self.fake.bot_messages(thread):
                text = shown(message.content)
                if text and text != expected and expected.startswith(text):
                    return message.id
            return None

        await self.fake.wait_for(partial, timeout=30, what="part of the answer on screen")
        message_id = partial()
        assert message_id is not None
        return message_id

    async def wait_stored(self, message_id: str, timeout: float = 10) -> None:
        """Wait until the bridge's database holds the question ``message_id`` (queued)."""

        def stored() -> bool:
            if not self.database.exists():
                return False
            with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as db:
                rows = db.execute(
                    "select 1 from turns where platform_message_id = ?", (message_id,)
                ).fetchall()
            return bool(rows)

        await self.fake.wait_for(stored, timeout=timeout, what=f"question {message_id} stored")

    async def wait_answered(
        self, thread: str, asked: list[str], *, timeout: float = 30.0, settle: float = 1.5
    ) -> Verdict:
        """Wait until every question shows a complete answer (or ``timeout``), then a
        little longer so late duplicates show up too; return the judge's verdict."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if judge(asked, self.replies(thread)).answers == len(asked):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(settle)
        return judge(asked, self.replies(thread))

    def chat_id(self, thread: str) -> str:
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as db:
            rows = db.execute(
                "select chat_id from conversations where thread = ?", (thread,)
            ).fetchall()
        ids = [str(r[0]) for r in rows if r[0]]
        assert len(ids) == 1, f"thread {thread}: chats {ids}"
        return ids[0]

    async def assert_chain(self, thread: str, questions: list[str]) -> None:
        """The chat is a sound tree showing question, answer, question, answer… in order."""
        chat = await asyncio.to_thread(fetch_chat, self.openwebui, self.chat_id(thread))
        history = history_of(chat)
        assert tree_problems(history) == [], history
        path = active_path(history)
        assert [m.get("role") for m in path] == ["user", "assistant"] * len(questions)
        for i, question in enumerate(questions):
            assert message_text(path[2 * i]) == question
            assert shown(message_text(path[2 * i + 1])) == expected_reply(question)

    def report(self, capsys: pytest.CaptureFixture[str], scenario: str, verdict: Verdict) -> None:
        """The scenario's one summary line, shown even without ``-s``."""
        with capsys.disabled():
            print(f"\n{verdict.line(f'discord-{scenario}', self.version)}")

    def assert_clean(self, verdict: Verdict, *threads: str) -> None:
        """No duplicate, lost or extra message; on failure show the threads and logs."""
        if verdict.clean:
            return
        lines = [verdict.line("?", self.version)]
        for thread in threads:
            for m in self.fake.bot_messages(thread):
                lines.append(f"  {thread} {m.id} edits={m.edits} {m.content[:70]!r}…")
        logs = "".join(p.output() for p in self.processes)
        raise AssertionError("\n".join([*lines, logs[-5000:]]))


def asked(text: str) -> str:
    """The question as the model sees it: the asker's name, the text without the mention."""
    return f"{ADA}: {text}"
