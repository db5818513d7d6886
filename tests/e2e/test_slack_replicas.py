"""Two ``owui-bridge run`` replicas on one PostgreSQL database, Slack in HTTP mode.

Each replica is a real process with its own HTTP port; Slack (the local fake) posts
each delivery to one of them, as a load balancer in front of both would. Every test
judges what a person sees in the thread, what the Open WebUI chat holds and what the
database keeps; the turns' ``lease_owner`` tells which replica ran each answer.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from adapters.slack.app import SCOPES
from tests import treecheck
from tests.contract.bridge_fixtures import fetch_chat, history_of
from tests.fakes.slack_server import BOT_USER_ID, FakeSlack, Message
from tests.faults.judge import Verdict, combine, judge, shown
from tests.harness.bridge_process import BridgeProcess, bridge_env
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI, free_port

SECRET = "replicas-signing-secret"
CHANNEL = "C100"
ALICE = "UALICE"
# One person per thread in the load test: each person's questions are rate limited.
PEOPLE = {f"UPERSON{n}": f"Person{n}" for n in range(20)}
NAMES = {ALICE: "Alice", **PEOPLE}
STOPPED = "\n\n_(stopped)_"  # how a stopped answer ends (bridge.delivery)
LEASE = 5  # BRIDGE_LEASE_SECONDS: a stalled replica's turns pass on after this
WAIT = 90.0  # generous: two processes, real servers, 2 shared cores


@dataclass
class Asked:
    """One question: its thread and what the model sees (the asker's name first)."""

    thread: str
    ts: str
    prompt: str

    @property
    def answer(self) -> str:
        return expected_reply(self.prompt)


@dataclass(frozen=True)
class TurnRow:
    thread: str
    platform_message_id: str
    status: str
    lease_owner: str | None


class Replicas:
    """FakeSlack, one PostgreSQL database and two bridge processes (``a``, ``b``) on it."""

    def __init__(
        self, openwebui: RunningOpenWebUI, fake: FakeSlack, database: str, tmp: Path
    ) -> None:
        self.openwebui, self.fake, self.database, self.tmp = openwebui, fake, database, tmp
        self.env = bridge_env(openwebui, tmp / "unused.db") | {
            "BRIDGE_DATABASE": database,
            "BRIDGE_LEASE_SECONDS": str(LEASE),
            "BRIDGE_TITLE_GENERATION": "false",
            "OPENWEBUI_API_KEY": openwebui.jwt,  # a JWT: live events
            "SLACK_BOT_TOKEN": "xoxb-replicas",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": fake.api_url,
        }
        self.a = BridgeProcess(tmp / "replica-a.log")
        self.b = BridgeProcess(tmp / "replica-b.log")

    @property
    def both(self) -> tuple[BridgeProcess, BridgeProcess]:
        return self.a, self.b

    async def start(self) -> None:
        # One after the other: the first applies the migrations, the second finds them.
        for replica in self.both:
            await replica.start(self.env | {"BRIDGE_HTTP_PORT": str(free_port())})
            await replica.wait_ready("/readyz", 200)

    async def stop(self) -> None:
        for replica in self.both:
            if replica.running:
                replica.proc.send_signal(signal.SIGCONT)  # a stalled one must hear SIGTERM
                await replica.stop()

    def other(self, replica: BridgeProcess) -> BridgeProcess:
        return self.b if replica is self.a else self.a

    def owner_of(self, replica: BridgeProcess) -> str:
        """The lease owner name prefix of ``replica`` (host:pidns:pid:…): matched by PID."""
        return f":{replica.proc.pid}:"

    def replica_of(self, owner: str | None) -> BridgeProcess | None:
        for replica in self.both:
            if owner is not None and self.owner_of(replica) in owner:
                return replica
        return None

    def logs(self) -> str:
        return "\n".join(f"--- {r.log.name}\n{r.output()[-6000:]}" for r in self.both)

    # -- Slack --------------------------------------------------------------------

    async def post(self, replica: BridgeProcess, body: dict[str, Any], retry: int = 0) -> None:
        """Slack posts ``body`` to ``replica`` (``retry``: as X-Slack-Retry-Num)."""
        status, text = await self.fake.post_event(
            f"{replica.url}/slack/events", body, SECRET, retry_num=retry or None
        )
        assert status == 200, (status, text, self.logs())

    async def ask(
        self,
        text: str,
        *,
        to: BridgeProcess | tuple[BridgeProcess, BridgeProcess],
        thread: str | None = None,
        user: str = ALICE,
    ) -> Asked:
        """``user`` mentions the bot (in ``thread``); Slack sends ``message`` and
        ``app_mention``: both to ``to``, or the first to ``to[0]``, the second to ``to[1]``."""
        ts, message, mention = self.fake.user_says(
            CHANNEL, user, f"<@{BOT_USER_ID}> {text}", thread_ts=thread
        )
        assert mention is not None
        first, second = to if isinstance(to, tuple) else (to, to)
        await self.post(first, message)
        await self.post(second, mention)
        return Asked(thread or ts, ts, f"{NAMES[user]}: {text}")

    def replies(self, thread: str) -> list[Message]:
        return self.fake.bot_replies(CHANNEL, thread)

    async def until(self, predicate: Callable[[], object], what: str) -> None:
        try:
            await self.fake.wait_for(predicate, timeout=WAIT, what=what)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from exc

    async def answered(self, asked: list[Asked]) -> Verdict:
        """Wait until every question in ``asked`` shows its whole answer; the verdict."""

        def verdict() -> Verdict:
            threads = dict.fromkeys(a.thread for a in asked)
            return combine(
                [
                    judge([a.prompt for a in asked if a.thread == t], self.replies(t))
                    for t in threads
                ]
            )

        await self.until(lambda: verdict().answers == len(asked), f"{len(asked)} answers")
        return verdict()

    async def partial(self, asked: Asked) -> Message:
        """The answer's message once part of it is on screen (still streaming)."""

        def found() -> Message | None:
            for message in self.replies(asked.thread):
                text = shown(message.text)
                if text and text != asked.answer and asked.answer.startswith(text):
                    return message
            return None

        await self.until(found, "part of the answer on screen")
        message = found()
        assert message is not None
        return message

    # -- the database and Open WebUI ------------------------------------------------

    async def turns(self) -> list[TurnRow]:
        connection = await asyncpg.connect(self.database)
        try:
            rows = await connection.fetch(
                "SELECT c.thread, t.platform_message_id, t.status, t.lease_owner"
                " FROM turns t JOIN conversations c ON c.id = t.conversation_id"
                " WHERE c.channel = $1 ORDER BY t.id",
                CHANNEL,
            )
        finally:
            await connection.close()
        return [TurnRow(r[0], r[1], r[2], r[3]) for r in rows]

    async def settled(self, statuses: list[str]) -> list[TurnRow]:
        """The turns, once their statuses read ``statuses`` (a turn is settled in the
        database just after its answer's last edit)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            turns = await self.turns()
            if [t.status for t in turns] == statuses:
                return turns
            if loop.time() > deadline:
                raise AssertionError(f"turns {turns}, not {statuses}\n{self.logs()}")
            await asyncio.sleep(0.2)

    async def chat_id(self, thread: str) -> str:
        connection = await asyncpg.connect(self.database)
        try:
            ids = await connection.fetch(
                "SELECT chat_id FROM conversations WHERE channel = $1 AND thread = $2",
                CHANNEL,
                thread,
            )
        finally:
            await connection.close()
        assert len(ids) == 1 and ids[0][0], f"thread {thread}: chats {ids}"
        return str(ids[0][0])

    async def chat(self, thread: str) -> list[dict[str, Any]]:
        """The chat's messages as the web UI shows them (root to current), checked sound."""
        chat = await asyncio.to_thread(fetch_chat, self.openwebui, await self.chat_id(thread))
        history = history_of(chat)
        assert treecheck.problems(history) == [], history
        return treecheck.branch(history)

    async def writer(self, asked: Asked) -> BridgeProcess:
        """The replica whose lease is on ``asked``'s turn."""
        for row in await self.turns():
            if row.platform_message_id == asked.ts:
                replica = self.replica_of(row.lease_owner)
                assert replica is not None, (row, self.logs())
                return replica
        raise AssertionError(f"no turn for {asked.ts}")


def assert_one_pair_each(path: list[dict[str, Any]], asked: list[Asked]) -> None:
    """The chat shows q1, a1, q2, a2, … in order, each answer whole."""
    assert [m["role"] for m in path] == ["user", "assistant"] * len(asked), path
    for i, question in enumerate(asked):
        marker = question.prompt.split(": ", 1)[1].split(" [[")[0]
        assert marker in treecheck.answer_text(path[2 * i]) or marker in str(
            path[2 * i].get("content")
        ), (i, path[2 * i])
        assert shown(treecheck.answer_text(path[2 * i + 1])) == question.answer, i


def assert_only_grew(message: Message) -> None:
    """Each text the message showed went on from the one before: never two writers."""
    texts = [shown(v) for v in message.versions]
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts)), texts


def assert_clean(verdict: Verdict, world: Replicas) -> None:
    assert (verdict.duplicates, verdict.lost, verdict.extra) == (0, 0, 0), (
        verdict,
        world.logs(),
    )
    assert verdict.in_order, world.logs()


@pytest.fixture
async def world(
    openwebui: RunningOpenWebUI, postgres_url: str, tmp_path: Path
) -> AsyncIterator[Replicas]:
    async with FakeSlack() as fake:
        fake.scopes = list(SCOPES)
        for user, name in NAMES.items():
            fake.add_user(user, name)
        replicas = Replicas(openwebui, fake, postgres_url, tmp_path)
        try:
            await replicas.start()
            yield replicas
        finally:
            fake.release_all()
            await replicas.stop()


async def test_a_retry_posted_to_the_other_replica_gets_no_second_answer(
    world: Replicas,
) -> None:
    # Slack's retry of a delivery may reach the other replica behind the load balancer,
    # while the first is still under way there (it retries after 3 s without an answer).
    ts, message, mention = world.fake.user_says(
        CHANNEL, ALICE, f"<@{BOT_USER_ID}> one answer only [[words=30]] [[delay=0.05]]"
    )
    assert mention is not None
    asked = Asked(ts, ts, "Alice: one answer only [[words=30]] [[delay=0.05]]")
    for body in (message, mention):
        await asyncio.gather(world.post(world.a, body), world.post(world.b, body, retry=1))

    await world.answered([asked])
    await asyncio.sleep(2)  # a late second copy shows up too (not a timed assert)
    verdict = judge([asked.prompt], world.replies(ts))
    assert_clean(verdict, world)
    assert [shown(m.text) for m in world.replies(ts)] == [asked.answer]
    turns = await world.settled(["done"])
    assert [t.platform_message_id for t in turns] == [ts]
    assert_one_pair_each(await world.chat(ts), [asked])


async def test_twenty_threads_of_three_questions_over_both_replicas(world: Replicas) -> None:
    threads, per_thread = len(PEOPLE), 3
    people = list(PEOPLE)
    flip = iter(range(10**6))

    def pair() -> tuple[BridgeProcess, BridgeProcess]:
        # Every delivery to the next replica: a question's two events go to different ones.
        first = world.a if next(flip) % 2 == 0 else world.b
        return first, world.other(first)

    async def one_thread(n: int) -> list[Asked]:
        who = people[n]
        asked = [await world.ask(f"t{n} q1 [[words=6]] [[delay=0.05]]", to=pair(), user=who)]
        for q in range(2, per_thread + 1):
            text = f"t{n} q{q} [[words=6]] [[delay=0.05]]"
            asked.append(await world.ask(text, to=pair(), thread=asked[0].thread, user=who))
        return asked

    asked_per_thread = await asyncio.gather(*(one_thread(n) for n in range(threads)))
    everything = [a for thread in asked_per_thread for a in thread]
    await world.answered(everything)
    await asyncio.sleep(2)  # late duplicates show up too

    for asked in asked_per_thread:
        verdict = judge([a.prompt for a in asked], world.replies(asked[0].thread))
        assert_clean(verdict, world)
        assert [shown(m.text) for m in world.replies(asked[0].thread)] == [a.answer for a in asked]
        assert_one_pair_each(await world.chat(asked[0].thread), asked)
    turns = await world.settled(["done"] * len(everything))
    assert sorted(t.platform_message_id for t in turns) == sorted(a.ts for a in everything)
    # Both replicas answered: the work was shared, not done by one.
    ran = {world.replica_of(t.lease_owner) for t in turns}
    assert ran == {world.a, world.b}, [t.lease_owner for t in turns]


@pytest.mark.parametrize("queued_on", ["writer", "survivor"])
async def test_a_killed_replicas_answer_is_finished_in_place_by_the_other(
    world: Replicas, queued_on: str
) -> None:
    first = await world.ask("killed mid-answer [[words=80]] [[delay=0.1]]", to=world.a)
    message = await world.partial(first)
    writer = await world.writer(first)
    survivor = world.other(writer)
    # Queued behind the answer under way (stored before the 200 comes back), on the
    # replica about to die (only the database tells the survivor) or on the survivor.
    second = await world.ask(
        "queued behind it [[words=20]] [[delay=0.02]]",
        to=writer if queued_on == "writer" else survivor,
        thread=first.thread,
    )

    writer.kill()
    await writer.wait(10)
    await world.answered([first, second])
    await asyncio.sleep(2)
    verdict = judge([first.prompt, second.prompt], world.replies(first.thread))
    assert_clean(verdict, world)
    # Finished in place: the message that showed part of it now shows all of it, and
    # its text only ever grew (one writer at a time).
    assert verdict.answer_messages[0] is message
    assert_only_grew(message)
    assert [shown(m.text) for m in world.replies(first.thread)] == [first.answer, second.answer]
    assert_one_pair_each(await world.chat(first.thread), [first, second])
    turns = await world.settled(["done", "done"])
    assert all(world.replica_of(t.lease_owner) is survivor for t in turns), turns


async def test_a_stalled_replicas_answer_passes_on_after_its_lease_and_it_lets_go(
    world: Replicas,
) -> None:
    asked = await world.ask("stalled mid-answer [[words=80]] [[delay=0.1]]", to=world.a)
    message = await world.partial(asked)
    stalled = await world.writer(asked)
    survivor = world.other(stalled)

    stalled.proc.send_signal(signal.SIGSTOP)
    try:
        await world.answered([asked])
        finished = (message.text, len(message.versions))
        calls_then = len(world.fake.calls)
        turns = await world.settled(["done"])
        assert [(t.status, world.replica_of(t.lease_owner)) for t in turns] == [("done", survivor)]
    finally:
        stalled.proc.send_signal(signal.SIGCONT)
    # Woken, the stalled replica sees the turn is no longer its own and lets it go.
    await world.until(
        lambda: "taken over by another process" in stalled.output(), "the stalled one to let go"
    )
    await asyncio.sleep(2)  # anything it would still write shows up now

    verdict = judge([asked.prompt], world.replies(asked.thread))
    assert_clean(verdict, world)
    assert verdict.answer_messages[0] is message, "not finished in place"
    assert_only_grew(message)
    later = [
        (c.method, {k: v for k, v in c.params.items() if k != "token"})
        for c in world.fake.calls[calls_then:]
        if c.params.get("ts") == message.ts
    ]
    versions = [repr(v) for v in message.versions]
    assert (message.text, len(message.versions)) == finished, "\n".join(
        ["written again after the takeover", *versions, repr(later), world.logs()]
    )
    assert [shown(m.text) for m in world.replies(asked.thread)] == [asked.answer]
    assert_one_pair_each(await world.chat(asked.thread), [asked])
    await world.settled(["done"])
    assert stalled.running  # it let the turn go and kept running


async def test_stop_reaction_delivered_to_the_other_replica_stops_the_answer(
    world: Replicas,
) -> None:
    asked = await world.ask("stop me [[words=400]] [[delay=0.05]]", to=world.a)
    message = await world.partial(asked)
    writer = await world.writer(asked)
    elsewhere = world.other(writer)

    await world.post(elsewhere, world.fake.react(CHANNEL, message.ts, ALICE, "stop_button"))
    await world.until(
        lambda: message.text.endswith(STOPPED) and message.stream_state != "streaming",
        "the stop mark",
    )
    shown_part = message.text.removesuffix(STOPPED)
    assert shown_part and asked.answer.startswith(shown_part) and shown_part != asked.answer
    assert world.replies(asked.thread) == [message]
    await world.settled(["stopped"])
    path = await world.chat(asked.thread)
    assert [m["role"] for m in path] == ["user", "assistant"]
    # Open WebUI keeps the part that was written, not the whole answer.
    kept = treecheck.answer_text(path[1])
    assert asked.answer.startswith(kept) and kept != asked.answer
