"""The bridge as a real ``owui-bridge run`` process, Slack as FakeSlack in this process.

A scenario starts the process, sends events over Socket Mode, injects a fault
(SIGKILL, SIGTERM, a held or refused Slack call), starts it again on the same
database, and then judges what a person sees in the thread and what Open WebUI
stored (see ``judge.py``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.slack.app import SCOPES
from tests.contract.bridge_fixtures import fetch_chat, history_of
from tests.fakes.slack_server import BOT_USER_ID, FakeSlack, Message
from tests.faults.judge import Verdict, judge, same_text, tree_problems
from tests.harness.bridge_process import BridgeProcess, bridge_env
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI, free_port

ALICE, BOB = "UALICE", "UBOB"
NAMES = {ALICE: "Alice", BOB: "Bob"}
CHANNEL = "C100"
START_TIMEOUT = 30.0


class Faults:
    """One scenario's world: a FakeSlack, a database file, and the bridge processes."""

    def __init__(self, openwebui: RunningOpenWebUI, fake: FakeSlack, tmp: Path) -> None:
        self.openwebui, self.fake, self.tmp = openwebui, fake, tmp
        self.database = tmp / "bridge.db"
        self.processes: list[BridgeProcess] = []
        self.env = bridge_env(openwebui, self.database) | {
            "OPENWEBUI_API_KEY": openwebui.jwt,  # a JWT: live events
            "SLACK_BOT_TOKEN": "xoxb-faults",
            "SLACK_APP_TOKEN": "xapp-faults",
            "SLACK_API_URL": fake.api_url,
        }

    @property
    def version(self) -> str:
        return self.openwebui.version

    async def start(self, **env: str) -> BridgeProcess:
        """Start the bridge (again) and wait until its Socket Mode connection is up."""
        connections = self.fake.socket_connections
        log = self.tmp / f"bridge-{len(self.processes) + 1}.log"
        process = BridgeProcess(log, cwd=self.tmp)
        self.processes.append(process)
        await process.start(self.env | {"BRIDGE_HTTP_PORT": str(free_port())} | env)
        await process.until(
            self.fake.wait_for_socket(connections + 1, timeout=START_TIMEOUT),
            "a Socket Mode connection",
        )
        return process

    async def kill(self, process: BridgeProcess) -> None:
        process.kill()
        await process.wait(10)

    async def stop_all(self) -> None:
        for process in self.processes:
            if process.running:
                await process.stop()

    async def say(
        self, user: str, text: str, thread_ts: str | None = None, *, mention: bool = True
    ) -> str:
        """A person posts in CHANNEL; Slack delivers ``message`` and ``app_mention``."""
        body = f"<@{BOT_USER_ID}> {text}" if mention else text
        ts, message, app_mention = self.fake.user_says(CHANNEL, user, body, thread_ts=thread_ts)
        await self.fake.send_event(message)
        if app_mention is not None:
            await self.fake.send_event(app_mention)
        return ts

    def replies(self, thread_ts: str) -> list[Message]:
        return self.fake.bot_replies(CHANNEL, thread_ts)

    async def wait_answered(
        self,
        thread_ts: str,
        asked: list[str],
        *,
        timeout: float = 30.0,
        settle: float = 1.5,
        partial_ok: tuple[int, ...] = (),
    ) -> Verdict:
        """Wait until every question shows a complete answer (or ``timeout``), then a
        little longer so late duplicates show up too; return the judge's verdict."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            verdict = judge(asked, self.replies(thread_ts), partial_ok=partial_ok)
            if verdict.answers == len(asked):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(settle)
        return judge(asked, self.replies(thread_ts), partial_ok=partial_ok)

    def chat_id(self, thread_ts: str) -> str:
        uri = f"file:{self.database}?mode=ro"
        with sqlite3.connect(uri, uri=True) as db:
            rows = db.execute(
                "select chat_id from conversations where channel = ? and thread = ?",
                (CHANNEL, thread_ts),
            ).fetchall()
        ids = [str(r[0]) for r in rows if r[0]]
        assert len(ids) == 1, f"thread {thread_ts}: chats {ids}"
        return ids[0]

    async def history(self, thread_ts: str) -> dict[str, Any]:
        chat = await asyncio.to_thread(fetch_chat, self.openwebui, self.chat_id(thread_ts))
        return history_of(chat)

    async def assert_tree(self, thread_ts: str) -> dict[str, Any]:
        history = await self.history(thread_ts)
        assert tree_problems(history) == [], history
        return history

    def report(self, capsys: pytest.CaptureFixture[str], scenario: str, verdict: Verdict) -> None:
        """The scenario's one summary line, shown even without ``-s``."""
        with capsys.disabled():
            print(f"\n{verdict.line(scenario, self.version)}")


def asked(user: str, text: str) -> str:
    """The question as the model sees it: the asker's name, the text without the mention."""
    return f"{NAMES[user]}: {text}"


def complete(message: Message | None, question: str) -> bool:
    return message is not None and same_text(message.text, expected_reply(question))


def assert_clean(verdict: Verdict, faults: Faults, *threads: str) -> None:
    """No duplicate, lost or extra message; on failure show the threads and the logs."""
    if (verdict.duplicates, verdict.lost, verdict.extra) == (0, 0, 0):
        return
    lines = [verdict.line("?", faults.version)]
    for thread in threads:
        for m in faults.replies(thread):
            lines.append(f"  {thread} {m.ts} {m.stream_state} {m.text[:70]!r}…{m.text[-12:]!r}")
    logs = "".join(p.output() for p in faults.processes)
    raise AssertionError("\n".join([*lines, logs[-5000:]]))


@pytest.fixture
async def faults(openwebui: RunningOpenWebUI, tmp_path: Path) -> AsyncIterator[Faults]:
    async with FakeSlack() as fake:
        fake.scopes = list(SCOPES)
        for user, name in NAMES.items():
            fake.add_user(user, name)
        world = Faults(openwebui, fake, tmp_path)
        try:
            yield world
        finally:
            # Release anything still held, so a stopping process is not stuck on it.
            fake.release_all()
            await world.stop_all()
