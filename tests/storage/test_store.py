"""The store on both back ends (an SQLite file, a real PostgreSQL): what the database
keeps, not mocks. Tests of one back end's own traits take ``db_path`` (SQLite)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.events import ThreadKey
from bridge.store import FolderRecord, NewTurn, RatingRecord, ThreadBusy, TurnStatus
from storage import MEMORY, SqliteStore, open_store
from tests.storage.conftest import Db

KEY = ThreadKey(platform="slack", workspace="T1", channel="C1", thread="1700000000.000100")
OTHER = ThreadKey(platform="discord", workspace="", channel="D1", thread="th-2")
ME = "this-process"  # the lease owner these tests take turns as


def raw(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Read the file through a separate plain connection, as a second process would."""
    conn = sqlite3.connect(path)
    try:
        return list(conn.execute(sql, params).fetchall())
    finally:
        conn.close()


def is_file(path: Path) -> bool:
    return path.is_file()  # sync helper: ruff's ASYNC240 bans Path I/O in coroutines


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "bridge.db"


@pytest.fixture
async def store(db: Db) -> AsyncIterator[Any]:
    s = await db.open()
    yield s
    await s.close()


@pytest.fixture
async def sqlite_store(db_path: Path) -> AsyncIterator[SqliteStore]:
    s = await open_store(db_path)
    yield s
    await s.close()


def new_turn(
    message: str, *, key: ThreadKey = KEY, event_id: str | None = None, order: str = ""
) -> NewTurn:
    return NewTurn(
        key=key,
        event_id=event_id or f"ev-{message}",
        platform_message_id=message,
        sort_key=order,
        event=f'{{"m": "{message}"}}',
        model="llama3",
        user_message_id=f"u-{message}",
        assistant_message_id=f"a-{message}",
    )


async def enqueue(store: Any, message: str, **kwargs: object) -> int:
    turn = await store.enqueue_turn(new_turn(message, **kwargs))  # type: ignore[arg-type]
    assert turn is not None
    return turn.id


async def test_open_creates_parent_dirs_and_sets_pragmas(
    sqlite_store: SqliteStore, db_path: Path
) -> None:
    assert is_file(db_path)
    # journal_mode is persistent in the file: a fresh connection sees it.
    assert raw(db_path, "PRAGMA journal_mode") == [("wal",)]
    # The other pragmas are per connection, so ask the store's own.
    conn = sqlite_store._conn
    for pragma, expected in (("foreign_keys", 1), ("busy_timeout", 5000), ("synchronous", 1)):
        async with conn.execute(f"PRAGMA {pragma}") as cur:
            row = await cur.fetchone()
        assert row is not None and row[0] == expected, pragma


async def test_enqueue_records_delivery_conversation_and_queued_turn(store: Any, db: Db) -> None:
    before = time.time()
    turn = await store.enqueue_turn(new_turn("m1", order="0001"))
    assert turn is not None and turn.status is TurnStatus.QUEUED
    assert (turn.platform_message_id, turn.sort_key, turn.event) == ("m1", "0001", '{"m": "m1"}')
    assert (turn.user_message_id, turn.assistant_message_id, turn.reply_ids) == ("u-m1", "a-m1", ())
    conversation = await store.get_conversation(KEY)
    assert conversation is not None and conversation.model == "llama3"
    assert conversation.chat_id is None and conversation.last_answer_id is None
    assert await db.raw("SELECT platform, event_id FROM processed_events") == [("slack", "ev-m1")]
    assert await db.raw("SELECT status FROM turns") == [("queued",)]
    assert conversation.created_at >= before


async def test_duplicates_write_nothing(store: Any, db: Db) -> None:
    await enqueue(store, "m1")
    # The same delivery again, and the same platform message under another delivery id.
    assert await store.enqueue_turn(new_turn("m1")) is None
    assert await store.enqueue_turn(new_turn("m1", event_id="another")) is None
    assert await db.raw("SELECT COUNT(*) FROM turns") == [(1,)]
    # A delivery refused as a duplicate message leaves no ledger row behind either.
    assert await db.raw("SELECT event_id FROM processed_events") == [("ev-m1",)]
    # Ids are per platform; the same message id in another thread is another turn.
    assert await store.enqueue_turn(new_turn("m1", key=OTHER)) is not None


async def test_twenty_concurrent_deliveries_give_one_turn(store: Any) -> None:
    results = await asyncio.gather(*(store.enqueue_turn(new_turn("same")) for _ in range(20)))
    assert sum(r is not None for r in results) == 1


async def test_concurrent_deliveries_across_two_connections(store: Any, db: Db) -> None:
    # Two stores on one file stand in for two bridge processes.
    second = await db.open()
    try:
        results = await asyncio.gather(
            *(s.enqueue_turn(new_turn("x")) for s in (store, second) for _ in range(10))
        )
    finally:
        await second.close()
    assert sum(r is not None for r in results) == 1
    assert await db.raw("SELECT COUNT(*) FROM conversations") == [(1,)]


async def test_take_turn_runs_cut_off_first_then_platform_order(store: Any) -> None:
    late = await enqueue(store, "late", order="0003")
    early = await enqueue(store, "early", order="0002")
    running = await enqueue(store, "running", order="0009")
    await store.mark_running(running)
    conversation = await store.get_conversation(KEY)
    assert conversation is not None
    order = []
    while (taken := await store.take_turn(conversation.id, ME, 30)) is not None:
        turn = taken.turn
        order.append(turn.id)
        await store.settle_turn(turn.id, TurnStatus.DONE, error=None, answer_id=None)
    assert order == [running, early, late]


async def test_open_conversations_per_platform(store: Any) -> None:
    await enqueue(store, "m1")
    await enqueue(store, "m2", key=OTHER)
    done = await enqueue(store, "m3", key=ThreadKey("slack", "T1", "C2", "t"))
    await store.settle_turn(done, TurnStatus.FAILED, error="x", answer_id=None)
    slack = await store.get_conversation(KEY)
    assert slack is not None
    assert await store.open_conversations("slack", ME) == [slack.id]
    assert len(await store.open_conversations("discord", ME)) == 1
    assert await store.open_conversations("console", ME) == []


async def test_settle_moves_the_chain_only_with_an_answer(store: Any, db: Db) -> None:
    first = await enqueue(store, "m1")
    await store.settle_turn(first, TurnStatus.DONE, error=None, answer_id="a-m1")
    second = await enqueue(store, "m2")
    # A failed turn whose answer never reached the chat leaves the chain alone…
    await store.settle_turn(second, TurnStatus.FAILED, error="unreachable", answer_id=None)
    assert await db.raw("SELECT last_answer_id FROM conversations") == [("a-m1",)]
    # …a stopped (or failed) one whose answer exists moves it: the next question hangs there.
    third = await enqueue(store, "m3")
    await store.settle_turn(third, TurnStatus.STOPPED, error=None, answer_id="a-m3")
    assert await db.raw("SELECT last_answer_id FROM conversations") == [("a-m3",)]
    assert await db.raw("SELECT status, error FROM turns ORDER BY id") == [
        ("done", None),
        ("failed", "unreachable"),
        ("stopped", None),
    ]
    with pytest.raises(LookupError):
        await store.settle_turn(9999, TurnStatus.DONE, error=None, answer_id=None)


async def test_settle_is_atomic(store: Any, db: Db) -> None:
    turn = await enqueue(store, "m1")
    # Make the second statement of the transaction fail, from outside the store.
    if db.kind == "sqlite":
        await db.raw(
            "CREATE TRIGGER boom BEFORE UPDATE OF last_answer_id ON conversations"
            " BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )
    else:
        await db.raw(
            "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$"
        )
        await db.raw(
            "CREATE TRIGGER boom BEFORE UPDATE OF last_answer_id ON conversations"
            " FOR EACH ROW EXECUTE FUNCTION boom()"
        )
    with pytest.raises(Exception, match="boom"):
        await store.settle_turn(turn, TurnStatus.DONE, error=None, answer_id="a-m1")
    # The turn's status update was rolled back with it.
    assert await db.raw("SELECT status FROM turns") == [("queued",)]
    # And the store is usable afterwards (no transaction left open).
    assert await store.enqueue_turn(new_turn("after")) is not None


async def test_reply_ids_and_chat_id(store: Any, db: Db) -> None:
    turn = await enqueue(store, "m1")
    await store.set_reply_ids(turn, ["1700.1", "1700.2"])
    conversation = await store.get_conversation(KEY)
    assert conversation is not None
    found = await store.find_turn(conversation.id, "m1")
    assert found is not None and found.reply_ids == ("1700.1", "1700.2")
    await store.set_chat_id(conversation.id, "chat-1")
    await store.settle_turn(turn, TurnStatus.DONE, error=None, answer_id="answer-1")
    assert await db.raw("SELECT chat_id, last_answer_id FROM conversations") == [
        ("chat-1", "answer-1")
    ]
    # The chat was deleted in Open WebUI: the next turn starts a new one, under nothing.
    await store.forget_chat(conversation.id)
    assert await db.raw("SELECT chat_id, last_answer_id FROM conversations") == [(None, None)]
    with pytest.raises(LookupError):
        await store.set_chat_id(9999, "nope")
    with pytest.raises(LookupError):
        await store.set_reply_ids(9999, [])


async def test_turns_in_creation_order(store: Any) -> None:
    ids = [await enqueue(store, f"m{i}", order=f"{9 - i}") for i in range(5)]
    await enqueue(store, "x", key=OTHER)
    conversation = await store.get_conversation(KEY)
    assert conversation is not None
    assert [t.id for t in await store.turns(conversation.id)] == ids
    assert await store.turns(9999) == []


async def test_prune_events(store: Any, db: Db) -> None:
    for message in ("old1", "old2", "new"):
        await enqueue(store, message)
    await db.raw("UPDATE processed_events SET received_at = 100 WHERE event_id LIKE 'ev-old%'")
    assert await store.prune_events(200.0) == 2
    assert await db.raw("SELECT event_id FROM processed_events") == [("ev-new",)]
    assert await store.prune_events(200.0) == 0
    # A forgotten delivery id is claimable again, but its message still has its turn.
    assert await store.enqueue_turn(new_turn("old1")) is None


async def test_data_survives_restart(db: Db) -> None:
    first = await db.open()
    done = await enqueue(first, "m1")
    await first.settle_turn(done, TurnStatus.DONE, error=None, answer_id="a-m1")
    waiting = await enqueue(first, "m2")
    await first.close()
    await first.close()  # closing twice is harmless

    second = await db.open()
    try:
        assert await second.enqueue_turn(new_turn("m2")) is None
        got = await second.get_conversation(KEY)
        assert got is not None and got.last_answer_id == "a-m1"
        assert await second.open_conversations("slack", ME) == [got.id]
        queued = await second.take_turn(got.id, ME, 30)
        assert queued is not None and queued.turn.id == waiting
    finally:
        await second.close()


async def test_schema_1_turns_are_kept_by_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE conversations (id INTEGER PRIMARY KEY, platform TEXT NOT NULL,
            workspace TEXT NOT NULL, channel TEXT NOT NULL, thread TEXT NOT NULL,
            chat_id TEXT NULL, last_answer_id TEXT NULL, model TEXT NOT NULL,
            created_at REAL NOT NULL, updated_at REAL NOT NULL,
            UNIQUE (platform, workspace, channel, thread));
        CREATE TABLE turns (id INTEGER PRIMARY KEY, conversation_id INTEGER NOT NULL
            REFERENCES conversations (id) ON DELETE CASCADE, platform_message_id TEXT NOT NULL,
            user_message_id TEXT NOT NULL, assistant_message_id TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
            error TEXT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
            UNIQUE (conversation_id, platform_message_id));
        CREATE INDEX turns_status ON turns (status);
        CREATE TABLE processed_events (platform TEXT NOT NULL, event_id TEXT NOT NULL,
            received_at REAL NOT NULL, PRIMARY KEY (platform, event_id));
        INSERT INTO conversations VALUES (1, 'slack', 'T1', 'C1', 't1', 'chat', 'a0', 'm', 1, 1);
        INSERT INTO turns VALUES (1, 1, 'm0', 'u0', 'a0', 'done', NULL, 1, 1);
        INSERT INTO turns VALUES (2, 1, 'm1', 'u1', 'a1', 'running', NULL, 2, 2);
        PRAGMA user_version = 1;
        """
    )
    conn.close()
    store = await open_store(path)
    try:
        taken = await store.take_turn(1, ME, 30)
        cut_off = taken.turn if taken else None
        assert cut_off is not None and cut_off.id == 2 and cut_off.status is TurnStatus.RUNNING
        assert cut_off.event is None and cut_off.reply_ids == ()
        assert [t.status for t in await store.turns(1)] == [TurnStatus.DONE, TurnStatus.RUNNING]
    finally:
        await store.close()


async def test_deleting_conversation_cascades_to_turns(store: Any, db: Db) -> None:
    await enqueue(store, "m1")
    conversation = await store.get_conversation(KEY)
    assert conversation is not None
    # No Store method deletes; from outside (with foreign keys on, as the store has them).
    await db.raw("DELETE FROM conversations WHERE id = ?", (conversation.id,))
    assert await store.turns(conversation.id) == []


async def test_in_memory_store_is_private_and_complete() -> None:
    one, two = await open_store(MEMORY), await open_store(MEMORY)
    try:
        assert await one.enqueue_turn(new_turn("m1")) is not None
        assert await two.get_conversation(KEY) is None
        assert await two.enqueue_turn(new_turn("m1")) is not None
    finally:
        await one.close()
        await two.close()


async def test_retired_conversation_keeps_its_turns_and_frees_the_key(store: Any, db: Db) -> None:
    first = await enqueue(store, "m1")
    old = await store.get_conversation(KEY)
    assert old is not None
    assert await store.retire_conversation(KEY) is True
    assert await store.get_conversation(KEY) is None
    assert await store.retire_conversation(KEY) is False  # nothing left to retire
    await enqueue(store, "m2")
    new = await store.get_conversation(KEY)
    assert new is not None and new.id != old.id
    kept = await store.conversation_by_id(old.id)
    assert kept is not None and kept.key.thread == f"{KEY.thread}#{old.id}"
    assert [t.id for t in await store.turns(old.id)] == [first]


def modes(db_path: Path) -> dict[str, int]:
    """Permission bits of the database file and its -wal/-shm companions."""
    return {
        p.name: p.stat().st_mode & 0o777
        for p in db_path.parent.iterdir()
        if p.name.startswith(db_path.name)
    }


def set_mode(path: Path, mode: int) -> None:
    path.chmod(mode)


async def test_the_database_files_are_readable_by_their_owner_only(db_path: Path) -> None:
    store = await open_store(db_path)
    try:
        await store.enqueue_turn(new_turn("m1"))  # something in the WAL
        modes = {p.name: p.stat().st_mode & 0o777 for p in db_path.parent.iterdir() if p.is_file()}
    finally:
        await store.close()
    assert modes[db_path.name] == 0o600
    assert {mode for name, mode in modes.items() if name.startswith(db_path.name)} == {0o600}


async def test_an_existing_open_database_is_tightened(db_path: Path) -> None:
    await (await open_store(db_path)).close()
    set_mode(db_path, 0o644)
    store = await open_store(db_path)
    await store.close()
    assert modes(db_path)[db_path.name] == 0o600


async def test_a_full_thread_refuses_and_writes_nothing(store: Any, db: Db) -> None:
    assert await store.enqueue_turn(replace(new_turn("m1"), limit=1)) is not None
    with pytest.raises(ThreadBusy) as busy:
        await store.enqueue_turn(replace(new_turn("m2"), limit=1))
    assert busy.value.waiting == 1
    assert await db.raw("SELECT platform_message_id FROM turns") == [("m1",)]
    # The delivery was not claimed: the same delivery can be taken later.
    assert await db.raw("SELECT event_id FROM processed_events") == [("ev-m1",)]


async def test_turn_by_reply_finds_the_newest_turn_in_that_message(store: Any) -> None:
    first = await enqueue(store, "m1")
    second = await enqueue(store, "m2")
    await store.set_reply_ids(first, ["100.1", "100.2"])
    await store.set_reply_ids(second, ["100.3"])
    found = await store.turn_by_reply("slack", "100.2")
    assert found is not None and found.id == first
    # A regenerated answer edits the same messages: the newer turn is the one there now.
    third = await enqueue(store, "m1~2")
    await store.set_reply_ids(third, ["100.1", "100.2"])
    again = await store.turn_by_reply("slack", "100.2")
    assert again is not None and again.id == third
    assert await store.turn_by_reply("slack", "100.") is None  # whole ids only
    assert await store.turn_by_reply("discord", "100.2") is None


async def test_folders_filing_and_ratings_round_trip(store: Any) -> None:
    turn = await enqueue(store, "m1")
    conversation = await store.get_conversation(KEY)
    assert conversation is not None
    assert await store.get_filing(conversation.id) == {}
    await store.set_filing(conversation.id, {"folder": "f1", "tags": ["Slack"]})
    assert await store.get_filing(conversation.id) == {"folder": "f1", "tags": ["Slack"]}

    folder = FolderRecord("slack", "T1", "C1", "f1", "Slack · #support")
    await store.save_folder(folder)
    await store.save_folder(replace(folder, name="Slack · #help"))
    assert await store.get_folder("slack", "T1", "C1") == replace(folder, name="Slack · #help")
    assert await store.get_folder("slack", "T1", "C2") is None

    await store.save_rating(RatingRecord(turn, "slack:U1", "fb1", 1))
    await store.save_rating(RatingRecord(turn, "slack:U1", "fb1", -1))
    assert await store.get_rating(turn, "slack:U1") == RatingRecord(turn, "slack:U1", "fb1", -1)
    await store.delete_rating(turn, "slack:U1")
    assert await store.get_rating(turn, "slack:U1") is None


async def test_where_answers_go_without_a_thread_survives_a_reopen(db: Db) -> None:
    store = await db.open()
    try:
        await enqueue(store, "m1", key=OTHER)
        assert await store.reply_channel(OTHER) is None  # in its thread
        await store.set_reply_channel(OTHER, "C-general")
        with pytest.raises(LookupError):
            await store.set_reply_channel(KEY, "C-general")  # no such conversation
    finally:
        await store.close()
    reopened = await db.open()
    try:
        assert await reopened.reply_channel(OTHER) == "C-general"
        assert await reopened.reply_channel(KEY) is None
    finally:
        await reopened.close()


async def test_an_upload_is_kept_per_thread_across_a_reopen(db: Db) -> None:
    store = await db.open()
    await enqueue(store, "m1")
    other = await store.enqueue_turn(new_turn("m2", key=replace(KEY, thread="t-other")))
    conversation = await store.get_conversation(KEY)
    assert conversation is not None and other is not None
    await store.save_upload(conversation.id, "F1", "owui-1", '{"id": "owui-1"}')
    await store.close()
    store = await db.open()  # a restart keeps it
    assert await store.get_upload(conversation.id, "F1") == '{"id": "owui-1"}'
    assert await store.get_upload(other.conversation_id, "F1") is None  # another thread
    assert await store.get_upload(conversation.id, "F2") is None
    await store.close()


async def test_a_queued_turns_event_is_replaced_only_while_it_waits(store: Any, db: Db) -> None:
    """An edited question: the stored event changes while queued, never once it ran."""
    first = await store.enqueue_turn(new_turn("m1"))
    assert first is not None
    assert await store.update_queued_event(first.id, '{"m": "m1 edited"}')
    assert await db.raw("SELECT event FROM turns WHERE id = ?", (first.id,)) == [
        ('{"m": "m1 edited"}',)
    ]
    await store.mark_running(first.id)
    assert not await store.update_queued_event(first.id, '{"m": "too late"}')
    assert not await store.update_queued_event(999, '{"m": "no such turn"}')
    assert await db.raw("SELECT event FROM turns WHERE id = ?", (first.id,)) == [
        ('{"m": "m1 edited"}',)
    ]


async def test_a_queued_turn_is_dropped_only_while_it_waits(store: Any, db: Db) -> None:
    """A deleted question: its queued turn is gone; a started one stays."""
    first = await store.enqueue_turn(new_turn("m1", order="1"))
    second = await store.enqueue_turn(new_turn("m2", order="2"))
    assert first is not None and second is not None
    await store.mark_running(first.id)
    assert not await store.drop_queued_turn(first.id)
    assert await store.drop_queued_turn(second.id)
    assert not await store.drop_queued_turn(second.id)
    assert await db.raw("SELECT platform_message_id FROM turns") == [("m1",)]
    # Its delivery stays claimed: a redelivery is still a duplicate.
    assert await store.enqueue_turn(new_turn("m2-again", event_id="ev-m2")) is None


async def test_a_delivery_without_a_turn_is_claimed_once(store: Any) -> None:
    assert await store.claim_event("slack", "ev-edit")
    assert not await store.claim_event("slack", "ev-edit")
    assert await store.delivered(KEY, "ev-edit", "no-such-message")
    assert await store.claim_event("discord", "ev-edit")  # per platform
    # Asked beside another delivery (a refusal remembered for every replica).
    assert await store.delivered(KEY, "ev-other", "no-such-message", or_event="ev-edit")
    assert not await store.delivered(KEY, "ev-other", "no-such-message", or_event="ev-none")


async def test_concurrent_claims_of_one_delivery_from_two_processes_one_wins(
    store: Any, db: Db
) -> None:
    second = await db.open()  # a second process on the same database
    try:
        results = await asyncio.gather(
            *(s.claim_event("slack", "ev-edit") for s in (store, second) for _ in range(10))
        )
    finally:
        await second.close()
    assert sum(results) == 1
    assert await db.raw("SELECT event_id FROM processed_events") == [("ev-edit",)]


async def test_concurrent_questions_never_overfill_a_thread(store: Any, db: Db) -> None:
    """Twenty questions at once into a thread that holds one: one is queued, the rest
    refused."""
    answered = await enqueue(store, "m0")  # the thread exists already
    await store.settle_turn(answered, TurnStatus.DONE, error=None, answer_id=None)
    second = await db.open()
    try:
        results = await asyncio.gather(
            *(
                s.enqueue_turn(replace(new_turn(f"m{i}-{n}"), limit=1))
                for n, s in enumerate((store, second))
                for i in range(10)
            ),
            return_exceptions=True,
        )
    finally:
        await second.close()
    assert sum(isinstance(r, ThreadBusy) for r in results) == 19
    assert await db.raw("SELECT COUNT(*) FROM turns WHERE status = 'queued'") == [(1,)]
    assert await db.raw("SELECT COUNT(*) FROM processed_events") == [(2,)]


async def test_postgres_a_thread_is_counted_under_its_lock(postgres_url: str) -> None:
    """A question being queued elsewhere (not committed yet) counts against the thread's
    limit: queueing waits for it instead of counting past it."""
    store = await open_store(postgres_url)
    other = await asyncpg.connect(postgres_url)
    try:
        answered = await enqueue(store, "m0")
        await store.settle_turn(answered, TurnStatus.DONE, error=None, answer_id=None)
        elsewhere = other.transaction()
        await elsewhere.start()
        await other.execute(
            "INSERT INTO turns (conversation_id, platform_message_id, user_message_id,"
            " assistant_message_id, status, created_at, updated_at)"
            " SELECT conversation_id, 'm1', 'u', 'a', 'queued', 0, 0 FROM turns WHERE id = $1",
            answered,
        )
        queueing = asyncio.create_task(store.enqueue_turn(replace(new_turn("m2"), limit=1)))
        await asyncio.wait({queueing}, timeout=0.5)  # let it reach the thread's lock
        await elsewhere.commit()
        with pytest.raises(ThreadBusy):
            await queueing
    finally:
        await other.close()
        await store.close()
    assert await Db("postgres", postgres_url).raw(
        "SELECT platform_message_id FROM turns WHERE status = 'queued'"
    ) == [("m1",)]


async def test_postgres_readiness_is_a_real_write(postgres_url: str) -> None:
    """/readyz asks ``writable``: a database that takes no writes (a read-only standby,
    here a read-only default) is not ready."""
    await (await open_store(postgres_url)).close()  # tables made
    name = postgres_url.rsplit("/", 1)[1]
    await Db("postgres", postgres_url).raw(
        f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'
    )
    store = await open_store(postgres_url)
    try:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await store.writable()
    finally:
        await store.close()
