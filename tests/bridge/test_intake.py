"""The core's logic over an in-memory SQLite store and a fake Open WebUI 0.12.x:
dedupe, per-thread order, settling, the chat tree after failures, stops,
queued turns across a restart, model fallback, and delivery apart from the
model's timeout. One turn, follow-ups, a failure and a stop also run against the
fake as 0.6.41 and 0.6.15 (the client writes the history). Fast; the real-server
tests cover the real protocol."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from bridge.actions import Act, Action, Outcome
from bridge.delivery import STOPPED_EARLY
from bridge.errors import (
    AnswerFailed,
    AnswerTimedOut,
    FileUnavailable,
    PlatformRateLimited,
    QuestionRefused,
    ReplyStopped,
    RequestRejected,
    TurnInterrupted,
)
from bridge.events import FileRef, PlatformEvent, ThreadKey
from bridge.intake import Bridge
from bridge.openwebui.filing import Filing
from bridge.openwebui.flows import Placement, flow_for
from bridge.openwebui.organise import Rater
from bridge.options import CoreOptions
from bridge.policy import AccessPolicy, Asker, Limits
from bridge.reply import Capabilities, OutFile, SaveMessageIds
from bridge.results import TurnResult
from bridge.store import Conversation, Turn, TurnStatus
from storage.sqlite import SqliteStore, open_store
from tests import treecheck
from tests.bridge.openwebui.fake_openwebui import VERSION, Answer, FakeOpenWebUI

pytestmark = pytest.mark.timeout(20)

FAST = Capabilities(max_message_length=100_000, min_update_interval=0.0)
# One release per turn flow: the server inserts the turn (0.9.0+); the client writes
# the history and the completion names the question (0.6.41 to 0.8.x) or does not.
RELEASES = [VERSION, "0.6.41", "0.6.15"]


# -- a recording platform ------------------------------------------------------


@dataclass
class Reply:
    """What one question's thread shows; every call is logged, nothing asserted here
    (an assertion raised inside the core would be taken for a platform error)."""

    platform: RecordingPlatform
    message_id: str
    save_ids: SaveMessageIds | None = None
    updates: list[str] = field(default_factory=list)
    final: str | None = None
    failure: str | None = None
    endings: int = 0  # finish (landed or not) and fail calls
    # Behaviour a test can set:
    update_delay: float = 0.0
    stop_on_update: bool = False
    finish_error: Exception | None = None

    async def start(self) -> None:
        pass

    async def update(self, text: str) -> bool:
        if self.stop_on_update:
            raise ReplyStopped("the person pressed stop")
        if self.save_ids is not None and not self.updates:
            await self.save_ids([f"msg-{self.message_id}"])
        await asyncio.sleep(self.update_delay)
        self.updates.append(text)
        return True

    async def finish(self, text: str) -> None:
        self.endings += 1
        if self.finish_error is not None:
            raise self.finish_error
        self.final = text
        self.platform.finished.append(self.message_id)

    async def attach(self, files: Sequence[OutFile]) -> None:
        pass

    async def fail(self, message: str) -> None:
        self.endings += 1
        self.failure = message
        self.platform.finished.append(self.message_id)


class RecordingPlatform:
    name = "test"
    capabilities = FAST

    def __init__(self) -> None:
        self.replies: dict[str, Reply] = {}
        self.given_ids: dict[str, tuple[str, ...]] = {}
        self.finished: list[str] = []  # message ids in the order their replies ended
        self.prepared: list[str] = []
        self.served: dict[str, bytes] = {}  # file id -> bytes ``download`` gives
        self.downloads: list[str] = []  # file ids downloaded, in order

    def reply_to(self, message_id: str) -> Reply:
        return self.replies.setdefault(message_id, Reply(self, message_id))

    async def download(self, file: FileRef) -> AsyncIterator[bytes]:
        self.downloads.append(file.id)
        data = self.served.get(file.id)
        if data is None:
            raise FileUnavailable("the link expired")
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    async def prepare(self, event: PlatformEvent) -> PlatformEvent:
        self.prepared.append(event.message_id)
        return event

    def reply(
        self, event: PlatformEvent, message_ids: Sequence[str], save_ids: SaveMessageIds
    ) -> Reply:
        self.given_ids[event.message_id] = tuple(message_ids)
        reply = self.reply_to(event.message_id)
        reply.save_ids = save_ids
        return reply


# -- building bridges ----------------------------------------------------------


def question(text: str, thread: str = "t1", *, order: str = "", **extra: Any) -> PlatformEvent:
    """``text`` doubles as the message and delivery id, so tests read like threads."""
    return PlatformEvent(
        event_id=extra.pop("event_id", f"ev-{text}"),
        thread=ThreadKey("test", "w", "c", thread),
        message_id=extra.pop("message_id", text),
        author_id="u1",
        author_name="",
        text=text,
        order=order,
        **extra,
    )


@dataclass
class Setup:
    fake: FakeOpenWebUI
    store: SqliteStore
    bridge: Bridge
    platform: RecordingPlatform

    async def turns(self, thread: str = "t1") -> list[Turn]:
        conversation = await self.store.get_conversation(ThreadKey("test", "w", "c", thread))
        assert conversation is not None
        return await self.store.turns(conversation.id)

    async def chat_id(self, thread: str = "t1") -> str:
        conversation = await self.store.get_conversation(ThreadKey("test", "w", "c", thread))
        assert conversation is not None and conversation.chat_id is not None
        return conversation.chat_id


BridgeMaker = Callable[..., Awaitable[Setup]]


@asynccontextmanager
async def _bridges(version: str = VERSION) -> AsyncIterator[BridgeMaker]:
    fake = FakeOpenWebUI(version=version)
    store = await open_store(":memory:")
    made: list[Bridge] = []
    clients = []

    async def make(filing: Filing | None = None, **options: Any) -> Setup:
        client = fake.client()
        clients.append(client)
        await client.connect()
        values: dict[str, Any] = {"default_model": "m", "poll_interval": 0.01, "answer_timeout": 5}
        core = CoreOptions(**values | options)
        bridge = Bridge(client, store, flow_for(client), core, filing=filing)
        platform = RecordingPlatform()
        bridge.register(platform)
        made.append(bridge)
        return Setup(fake, store, bridge, platform)

    try:
        yield make
    finally:
        for bridge in made:
            await bridge.drain(0)
        for client in clients:
            await client.aclose()
        await store.close()


@pytest.fixture
async def make_bridge() -> AsyncIterator[BridgeMaker]:
    async with _bridges() as make:
        yield make


@pytest.fixture
async def s(make_bridge: BridgeMaker) -> Setup:
    return await make_bridge()


@pytest.fixture(params=RELEASES)
async def make_any(request: pytest.FixtureRequest) -> AsyncIterator[BridgeMaker]:
    """Bridges against the fake as each turn flow's release."""
    async with _bridges(request.param) as make:
        yield make


@pytest.fixture
async def each(make_any: BridgeMaker) -> Setup:
    return await make_any()


async def submit(s: Setup, event: PlatformEvent) -> asyncio.Future[TurnResult]:
    pending = await s.bridge.submit(event)
    assert pending is not None, "a new question must be queued"
    return pending


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def tree_ok(s: Setup, chat_id: str) -> None:
    assert treecheck.problems(s.fake.history(chat_id)) == []


def asked_under(s: Setup, chat_id: str, question_text: str) -> str | None:
    """The parent the chat stores for the question: what the web UI hangs it under."""
    [asked] = [
        m
        for m in s.fake.history(chat_id)["messages"].values()
        if m.get("role") == "user" and m.get("content") == question_text
    ]
    parent: str | None = asked.get("parentId")
    return parent


# -- dedupe --------------------------------------------------------------------


async def test_a_delivery_seen_twice_is_answered_once(each: Setup) -> None:
    s = each
    q = question("q1")
    pending = await submit(s, q)
    assert await s.bridge.submit(q) is None  # while queued or running
    result = await pending
    assert await s.bridge.submit(q) is None  # after it settled
    # Slack may deliver one message twice under two event ids.
    assert await s.bridge.submit(question("q1", event_id="another-delivery")) is None
    # One delivery id is one delivery, whatever it carries.
    assert await s.bridge.submit(question("q1-bis", event_id="ev-q1")) is None
    await until(lambda: s.bridge.idle)

    assert result.status is TurnStatus.DONE
    assert len(s.fake.completions) == 1
    reply = s.platform.replies["q1"]
    assert (reply.final, reply.endings) == ("answer to q1", 1)
    assert [t.status for t in await s.turns()] == [TurnStatus.DONE]
    chat_id = await s.chat_id()
    tree_ok(s, chat_id)
    path = treecheck.branch(s.fake.history(chat_id))
    assert [(m["role"], treecheck.answer_text(m)) for m in path] == [
        ("user", "q1"),
        ("assistant", "answer to q1"),
    ]


# -- order ---------------------------------------------------------------------


async def test_a_thread_answers_in_platform_order_not_arrival_order(each: Setup) -> None:
    s = each
    s.fake.hold()
    first = await submit(s, question("q1", order="1"))
    a1 = await s.fake.next_held()
    later = [await submit(s, question("q3", order="3")), await submit(s, question("q2", order="2"))]
    await asyncio.sleep(0.05)
    assert len(s.fake.completions) == 1, "a second turn of the thread started while busy"
    s.fake.auto()
    a1.finish("one")
    await asyncio.gather(first, *later)

    assert s.platform.finished == ["q1", "q2", "q3"]
    assert s.fake.questions == ["q1", "q2", "q3"]
    # Each question chains under the previous answer: one linear chat.
    chat_id = await s.chat_id()
    tree_ok(s, chat_id)
    path = treecheck.branch(s.fake.history(chat_id))
    assert [(m["role"], treecheck.answer_text(m)) for m in path] == [
        ("user", "q1"),
        ("assistant", "one"),
        ("user", "q2"),
        ("assistant", "answer to q2"),
        ("user", "q3"),
        ("assistant", "answer to q3"),
    ]


async def test_threads_run_side_by_side_up_to_the_limit_each_one_at_a_time(
    make_bridge: BridgeMaker,
) -> None:
    s = await make_bridge(max_concurrent_turns=2)
    s.fake.hold()
    pending = [
        await submit(s, question("a1", "A", order="1")),
        await submit(s, question("a2", "A", order="2")),
        await submit(s, question("b1", "B")),
        await submit(s, question("c1", "C")),
    ]
    running: list[Answer] = [await s.fake.next_held(), await s.fake.next_held()]
    await asyncio.sleep(0.05)
    assert s.fake.held.empty(), "more turns ran at once than max_concurrent_turns"
    # Two threads at once, never two turns of one thread.
    assert sorted(a.question[0] for a in running) == ["a", "b"]
    answered: list[str] = []
    started = 2
    while running:
        done = running.pop(0)
        done.finish()
        answered.append(done.question)
        if started < 4:
            running.append(await s.fake.next_held())
            started += 1
        await asyncio.sleep(0.02)
        assert s.fake.held.empty(), "more turns ran at once than max_concurrent_turns"
        threads = [a.question[0] for a in running]
        assert len(threads) == len(set(threads)), "two turns of one thread ran at once"
    results = await asyncio.gather(*pending)
    assert [r.status for r in results] == [TurnStatus.DONE] * 4
    assert answered.index("a1") < answered.index("a2")


# -- settling ------------------------------------------------------------------


async def test_every_turn_ends_once_with_its_stored_status(make_any: BridgeMaker) -> None:
    s = await make_any(answer_timeout=0.3)
    s.fake.hold()
    done = await submit(s, question("ok", "t-done"))
    (await s.fake.next_held()).finish("fine")
    failed = await submit(s, question("bad", "t-failed"))
    (await s.fake.next_held()).fail("upstream exploded")
    slow = await submit(s, question("slow", "t-slow"))
    never = await s.fake.next_held()
    results = await asyncio.gather(done, failed, slow)

    assert [r.status for r in results] == [TurnStatus.DONE, TurnStatus.FAILED, TurnStatus.FAILED]
    assert isinstance(results[1].error, AnswerFailed)
    assert isinstance(results[2].error, AnswerTimedOut)
    replies = s.platform.replies
    assert [replies[m].endings for m in ("ok", "bad", "slow")] == [1, 1, 1]
    assert (replies["ok"].final, replies["ok"].failure) == ("fine", None)
    assert (replies["bad"].final, replies["bad"].failure) == (None, AnswerFailed.user_message)
    assert replies["slow"].failure == AnswerTimedOut.user_message
    # A timed-out answer is stopped in Open WebUI and left done there.
    assert never.stopped and never.message["done"] is True
    for thread, status in (
        ("t-done", TurnStatus.DONE),
        ("t-failed", TurnStatus.FAILED),
        ("t-slow", TurnStatus.FAILED),
    ):
        [turn] = await s.turns(thread)
        assert turn.status is status
        assert (turn.error is None) == (status is TurnStatus.DONE)
        tree_ok(s, await s.chat_id(thread))


async def test_the_next_question_chains_under_a_failed_partial_answer(each: Setup) -> None:
    s = each
    s.fake.hold()
    first = await submit(s, question("q1"))
    a1 = await s.fake.next_held()
    a1.write("half an ans")
    await until(lambda: bool(s.platform.replies["q1"].updates))
    a1.fail("upstream died")
    assert (await first).status is TurnStatus.FAILED
    s.fake.auto()
    second = await (await submit(s, question("q2")))

    assert second.status is TurnStatus.DONE
    assert asked_under(s, await s.chat_id(), "q2") == a1.message_id
    tree_ok(s, await s.chat_id())
    assert s.platform.replies["q2"].final == "answer to q2"


class UnplaceableFiling:
    """Filing whose look-up before a new chat fails (Open WebUI refusing its folders)."""

    def __init__(self) -> None:
        self.filed: list[tuple[str, Placement | None]] = []

    async def placement(self, conversation: Conversation, event: PlatformEvent) -> Placement:
        raise RequestRejected("GET /api/v1/folders/f1: 500")

    async def file(
        self,
        conversation: Conversation,
        event: PlatformEvent,
        chat_id: str,
        answer_id: str,
        placed: Placement | None = None,
    ) -> None:
        self.filed.append((chat_id, placed))


async def test_a_new_chat_filing_cannot_place_is_answered_and_filed_after(
    make_any: BridgeMaker,
) -> None:
    filing = UnplaceableFiling()
    s = await make_any(filing=filing)
    result = await (await submit(s, question("q1")))

    assert result.status is TurnStatus.DONE
    assert s.platform.replies["q1"].final == "answer to q1"
    # Created with nothing placed: filing files and links it after the turn as before.
    assert filing.filed == [(await s.chat_id(), Placement())]


async def test_a_stop_on_the_platform_stops_the_task_and_the_chat_goes_on(each: Setup) -> None:
    s = each
    s.fake.hold()
    s.platform.reply_to("q1").stop_on_update = True
    first = await submit(s, question("q1"))
    a1 = await s.fake.next_held()
    a1.write("some text")
    result = await first
    chat_id = await s.chat_id()

    assert result.status is TurnStatus.STOPPED
    assert s.fake.stops(chat_id) == 1 and a1.stopped
    assert a1.message["done"] is True  # closed, so the web UI does not show it as running
    reply = s.platform.replies["q1"]
    assert (reply.endings, reply.failure) == (1, None)
    assert [t.status for t in await s.turns()] == [TurnStatus.STOPPED]
    s.fake.auto()
    assert (await (await submit(s, question("q2")))).status is TurnStatus.DONE
    assert asked_under(s, chat_id, "q2") == a1.message_id
    tree_ok(s, chat_id)


# -- a restart -----------------------------------------------------------------


@pytest.mark.parametrize("while_down", ["still writing", "finished", "task lost"])
async def test_turns_left_by_a_crash_run_after_restart_in_order_in_place(
    make_bridge: BridgeMaker, while_down: str
) -> None:
    old = await make_bridge()
    old.fake.hold()
    await submit(old, question("q1", order="1"))
    a1 = await old.fake.next_held()
    await submit(old, question("q3", order="3"))
    await submit(old, question("q2", order="2"))
    a1.write("part")
    await until(lambda: bool(old.platform.replies["q1"].updates))
    await old.bridge.drain(0)  # a crash as far as the store can tell
    assert [t.status for t in await old.turns()] == [
        TurnStatus.RUNNING,
        TurnStatus.QUEUED,
        TurnStatus.QUEUED,
    ]
    if while_down == "finished":
        a1.finish("part and the rest")
    elif while_down == "task lost":
        a1.abandon()

    new = await make_bridge()
    new.fake.auto()
    assert await new.bridge.resume("test") == 1
    if while_down == "still writing":
        await asyncio.sleep(0.05)
        a1.finish("part and the rest")
    await until(lambda: new.bridge.idle)

    replies = new.platform.replies
    assert new.platform.finished == ["q1", "q2", "q3"]
    # The cut-off turn's reply edits the message it had already posted.
    assert new.platform.given_ids["q1"] == ("msg-q1",)
    assert new.platform.given_ids["q2"] == ()
    if while_down == "task lost":
        assert replies["q1"].failure == TurnInterrupted.user_message
        expected = [TurnStatus.FAILED, TurnStatus.DONE, TurnStatus.DONE]
    else:
        assert replies["q1"].final == "part and the rest"
        expected = [TurnStatus.DONE] * 3
    assert [r.endings for r in replies.values()] == [1, 1, 1]
    assert [t.status for t in await new.turns()] == expected
    sent = new.fake.completions
    assert [c["user_message"]["content"] for c in sent] == ["q1", "q2", "q3"]
    assert sent[1]["parent_id"] == a1.message_id
    assert sent[2]["parent_id"] == sent[1]["id"]
    tree_ok(new, await new.chat_id())


# -- model fallback --------------------------------------------------------------


async def test_a_thread_whose_model_is_refused_is_answered_by_the_default_meanwhile(
    make_bridge: BridgeMaker,
) -> None:
    s = await make_bridge()
    s.fake.models = ["m", "old"]
    assert (await (await submit(s, question("q1", model="old")))).status is TurnStatus.DONE
    s.fake.models = ["m"]  # the model's backend is restarting: Open WebUI refuses it
    for text in ("q2", "q3"):
        assert (await (await submit(s, question(text)))).status is TurnStatus.DONE
    s.fake.models = ["m", "old"]  # back again: the thread never left it
    assert (await (await submit(s, question("q4")))).status is TurnStatus.DONE

    asked = [c["model"] for c in s.fake.completions]
    assert asked == ["old", "old", "m", "old", "m", "old"]
    finals = {text: s.platform.replies[text].final for text in ("q2", "q3", "q4")}
    # The thread is told once while its model is away, above the answer.
    assert finals == {
        "q2": "_old is not available right now; m answers instead._\n\nanswer to q2",
        "q3": "answer to q3",
        "q4": "answer to q4",
    }
    tree_ok(s, await s.chat_id())


async def test_a_new_thread_asking_for_an_unknown_model_is_refused_not_redirected(
    s: Setup,
) -> None:
    result = await (await submit(s, question("q1", model="nope")))
    assert result.status is TurnStatus.FAILED
    assert [c["model"] for c in s.fake.completions] == ["nope"]


# -- delivery apart from the model ---------------------------------------------


async def test_a_slow_platform_does_not_time_out_a_finished_answer(
    make_bridge: BridgeMaker,
) -> None:
    s = await make_bridge(answer_timeout=0.3)
    s.fake.hold()
    reply = s.platform.reply_to("q1")
    reply.update_delay = 0.6  # e.g. a 429 waited out
    pending = await submit(s, question("q1"))
    answer = await s.fake.next_held()
    for text in ("a", "ab", "abc"):
        answer.write(text)
        await asyncio.sleep(0.03)
    answer.finish("abcd")
    result = await pending

    assert result.status is TurnStatus.DONE, result.error
    assert (reply.final, reply.failure, reply.endings) == ("abcd", None, 1)
    assert s.fake.stops(await s.chat_id()) == 0


async def test_a_final_refused_by_the_platform_fails_the_turn_with_that_error(s: Setup) -> None:
    reply = s.platform.reply_to("q1")
    reply.finish_error = PlatformRateLimited("chat.update answered 429 for too long")
    result = await (await submit(s, question("q1")))

    assert result.status is TurnStatus.FAILED
    assert result.error is reply.finish_error
    assert reply.failure == PlatformRateLimited.user_message
    [turn] = await s.turns()
    assert turn.status is TurnStatus.FAILED
    assert turn.error is not None and "PlatformRateLimited" in turn.error
    # The answer exists in the chat: the next question still chains under it.
    conversation = await s.store.conversation_by_id(turn.conversation_id)
    assert conversation is not None
    assert conversation.last_answer_id == turn.assistant_message_id


async def test_a_copy_of_a_question_already_taken_never_counts(
    make_bridge: BridgeMaker,
) -> None:
    # One question a minute: the copies of the first (a retry with the same delivery
    # id, Slack's second event kind with another) are neither refused nor counted.
    s = await make_bridge(limits=Limits(user_rate_limit=1))
    first = question("only one a minute")
    result = await submit(s, first)
    assert await s.bridge.submit(first) is None
    assert await s.bridge.submit(replace(first, event_id="ev-app-mention")) is None
    assert (await result).status is TurnStatus.DONE
    assert [t.platform_message_id for t in await s.turns()] == ["only one a minute"]
    with pytest.raises(QuestionRefused):  # a new question is over the limit
        await s.bridge.submit(question("a second one"))


# -- a start whose answer was lost -------------------------------------------------


async def test_a_completion_the_server_took_before_the_connection_broke_is_followed(
    s: Setup,
) -> None:
    assert (await (await submit(s, question("q1")))).status is TurnStatus.DONE
    s.fake.drop_completion_responses = 1
    result = await (await submit(s, question("q2")))
    # The server had the turn: it is followed, not sent again nor reported unreachable.
    assert result.status is TurnStatus.DONE
    assert s.platform.replies["q2"].final == "answer to q2"
    assert [c["user_message"]["content"] for c in s.fake.completions] == ["q1", "q2"]
    tree_ok(s, await s.chat_id())


async def test_asking_for_another_answer_counts_like_a_question(
    make_bridge: BridgeMaker,
) -> None:
    s = await make_bridge(limits=Limits(user_rate_limit=1))
    assert (await (await submit(s, question("q1")))).status is TurnStatus.DONE
    await s.store.set_reply_ids((await s.turns())[0].id, ["reply-q1"])
    # u1 asked one question this minute: their 🔁 is over the limit; u2's is not.
    refused = await s.bridge.act(regenerate("reply-q1", "ev-r1", "u1"))
    assert refused.outcome is Outcome.REFUSED and refused.notice
    again = await s.bridge.act(regenerate("reply-q1", "ev-r2", "u2"))
    assert again.answer is not None and (await again.answer).status is TurnStatus.DONE
    with pytest.raises(QuestionRefused):  # and now u2 has asked one too
        await s.bridge.submit(replace(question("q2"), author_id="u2"))


def regenerate(message_id: str, event_id: str, user: str = "u1") -> Action:
    return Action(Act.REGENERATE, "test", message_id, Rater("test", user, user), None, event_id)


async def test_a_regenerate_stopped_before_its_first_words_leaves_the_old_answer(
    s: Setup,
) -> None:
    assert (await (await submit(s, question("q1")))).status is TurnStatus.DONE
    await s.store.set_reply_ids((await s.turns())[0].id, ["reply-q1"])
    s.fake.hold()
    acted = await s.bridge.act(regenerate("reply-q1", "ev-r1"))
    assert acted.answer is not None
    await s.fake.next_held()  # asked, not a word written yet
    stop = Action(Act.STOP, "test", "reply-q1", Rater("test", "u1", "Ann"), None)
    assert (await s.bridge.act(stop)).outcome is Outcome.DONE
    assert (await acted.answer).status is TurnStatus.STOPPED

    # The old answer is not overwritten: the notice goes beside it.
    reply = s.platform.replies["q1~ev-r1"]
    assert (reply.final, reply.failure) == (None, STOPPED_EARLY)
    assert s.platform.replies["q1"].final == "answer to q1"
    # ... and that message can still be rated and redone.
    rate = Action(Act.RATE, "test", "reply-q1", Rater("test", "u1", "Ann"), None, vote=1)
    assert (await s.bridge.act(rate)).outcome is Outcome.DONE
    s.fake.auto()
    again = await s.bridge.act(regenerate("reply-q1", "ev-r2"))
    assert again.answer is not None and (await again.answer).status is TurnStatus.DONE


async def test_actions_of_people_who_may_not_ask_there_change_nothing(
    make_bridge: BridgeMaker,
) -> None:
    s = await make_bridge(access=AccessPolicy(denied_users=frozenset({"u9"})))
    assert (await (await submit(s, question("q1")))).status is TurnStatus.DONE
    await s.store.set_reply_ids((await s.turns())[0].id, ["reply-q1"])
    denied = Asker(workspace="w", channel="c", user="u9")
    acted = await s.bridge.act(
        Action(Act.REGENERATE, "test", "reply-q1", Rater("test", "u9", "Eve"), denied, "ev-r")
    )
    assert acted.outcome is Outcome.NOT_ALLOWED and acted.answer is None
    assert [t.status for t in await s.turns()] == [TurnStatus.DONE]  # nothing queued
    other = await s.bridge.act(regenerate("some-other-message", "ev-x"))
    assert other.outcome is Outcome.NOT_AN_ANSWER


async def test_a_copy_of_a_refused_question_is_no_second_refusal(make_bridge: BridgeMaker) -> None:
    s = await make_bridge(limits=Limits(max_question_chars=10))
    long = question("a question far too long", event_id="ev-message")
    with pytest.raises(QuestionRefused):
        await s.bridge.submit(long)
    # Slack's second event kind for the same mention, then a retry: recognised, not judged.
    assert await s.bridge.submit(replace(long, event_id="ev-app-mention")) is None
    assert await s.bridge.submit(long) is None


async def test_an_answer_whose_task_ends_as_the_bridge_restarts_is_not_called_cut(
    make_bridge: BridgeMaker,
) -> None:
    """The task has just ended but the answer is not marked done yet (the server writes
    that a moment later): the restarted bridge finds it finished, not cut off."""
    old = await make_bridge()
    old.fake.hold()
    await submit(old, question("q1"))
    a1 = await old.fake.next_held()
    a1.write("the whole")
    await until(lambda: bool(old.platform.replies["q1"].updates))
    await old.bridge.drain(0)
    a1.abandon()  # the task is gone...
    asyncio.get_running_loop().call_later(0.3, a1.finish, "the whole answer")  # ...done soon

    new = await make_bridge()
    assert await new.bridge.resume("test") == 1
    await until(lambda: new.bridge.idle, timeout=5)
    assert [t.status for t in await new.turns()] == [TurnStatus.DONE]
    assert new.platform.replies["q1"].final == "the whole answer"


async def test_questions_left_queued_at_shutdown_are_not_counted_as_waiting(
    make_bridge: BridgeMaker,
) -> None:
    s = await make_bridge()
    s.fake.hold()
    before = REGISTRY.get_sample_value("owui_bridge_questions_queued") or 0.0
    await submit(s, question("q1", order="1"))
    await s.fake.next_held()
    await submit(s, question("q2", order="2"))  # waits behind q1
    assert (REGISTRY.get_sample_value("owui_bridge_questions_queued") or 0.0) == before + 1
    await s.bridge.drain(0)
    assert (REGISTRY.get_sample_value("owui_bridge_questions_queued") or 0.0) == before


async def test_a_regenerate_names_the_message_that_asked_in_a_field_of_its_own(
    s: Setup,
) -> None:
    """Adapters reply to (and open threads from) the asking message: they read it from
    the event, never by taking the turn's id apart."""
    assert (await (await submit(s, question("q1")))).status is TurnStatus.DONE
    await s.store.set_reply_ids((await s.turns())[0].id, ["reply-q1"])
    for n in (1, 2):  # a new answer, then another new answer to the same question
        acted = await s.bridge.act(regenerate("reply-q1", f"ev-r{n}"))
        assert acted.answer is not None and (await acted.answer).status is TurnStatus.DONE
        event = PlatformEvent.from_json((await s.turns())[-1].event)
        assert (event.asked_in, event.question_message_id) == ("q1", "q1")
        assert event.message_id != "q1"  # the turn's own id
