"""SqliteStore against real database files: what the database keeps, not mocks."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.events import ThreadKey
from bridge.store import DuplicateTurn, Store, TurnStatus
from storage import SqliteStore, open_store

KEY = ThreadKey(platform="slack", workspace="T1", channel="C1", thread="1700000000.000100")
OTHER = ThreadKey(platform="discord", workspace="", channel="D1", thread="th-2")


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
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    s = await open_store(db_path)
    yield s
    await s.close()


def test_satisfies_protocol() -> None:
    # Static check (mypy) that the implementation matches the core's Protocol.
    _: type[Store] = SqliteStore
    assert callable(open_store)


async def test_open_creates_parent_dirs_and_sets_pragmas(store: SqliteStore, db_path: Path) -> None:
    assert is_file(db_path)
    # journal_mode is persistent in the file: a fresh connection sees it.
    assert raw(db_path, "PRAGMA journal_mode") == [("wal",)]
    # The other pragmas are per connection, so ask the store's own.
    conn = store._conn
    for pragma, expected in (("foreign_keys", 1), ("busy_timeout", 5000), ("synchronous", 1)):
        async with conn.execute(f"PRAGMA {pragma}") as cur:
            row = await cur.fetchone()
        assert row is not None and row[0] == expected, pragma


async def test_foreign_keys_are_enforced(store: SqliteStore) -> None:
    with pytest.raises(sqlite3.IntegrityError) as info:
        await store.start_turn(9999, "m1", "u1", "a1")
    assert not isinstance(info.value, DuplicateTurn)


async def test_claim_event(store: SqliteStore, db_path: Path) -> None:
    before = time.time()
    assert await store.claim_event("slack", "Ev1") is True
    assert await store.claim_event("slack", "Ev1") is False
    # Ids are per platform.
    assert await store.claim_event("discord", "Ev1") is True
    rows = raw(db_path, "SELECT platform, event_id, received_at FROM processed_events ORDER BY 1")
    assert [(p, e) for p, e, _ in rows] == [("discord", "Ev1"), ("slack", "Ev1")]
    assert all(isinstance(t, float) and t >= before for _, _, t in rows)


async def test_twenty_concurrent_claims_give_exactly_one_true(store: SqliteStore) -> None:
    results = await asyncio.gather(*(store.claim_event("slack", "same") for _ in range(20)))
    assert results.count(True) == 1


async def test_concurrent_claims_across_two_connections(store: SqliteStore, db_path: Path) -> None:
    # Two stores on one file stand in for two bridge processes.
    second = await open_store(db_path)
    try:
        results = await asyncio.gather(
            *(s.claim_event("slack", "x") for s in (store, second) for _ in range(10))
        )
    finally:
        await second.close()
    assert results.count(True) == 1


async def test_conversation_round_trip(store: SqliteStore, db_path: Path) -> None:
    assert await store.get_conversation(KEY) is None
    conv = await store.create_conversation(KEY, "llama3")
    assert conv.key == KEY and conv.model == "llama3"
    assert conv.chat_id is None and conv.last_answer_id is None
    assert conv.created_at == conv.updated_at
    assert await store.get_conversation(KEY) == conv
    # Empty workspace (DMs) is a real value, distinct from other keys.
    other = await store.create_conversation(OTHER, "qwen")
    assert other.id != conv.id and other.key == OTHER
    assert raw(db_path, "SELECT COUNT(*) FROM conversations") == [(2,)]


async def test_create_conversation_is_idempotent(store: SqliteStore, db_path: Path) -> None:
    first = await store.create_conversation(KEY, "llama3")
    again = await store.create_conversation(KEY, "another-model")
    assert again == first  # the existing mapping wins, model included
    racers = await asyncio.gather(*(store.create_conversation(KEY, "m") for _ in range(10)))
    assert {c.id for c in racers} == {first.id}
    assert raw(db_path, "SELECT COUNT(*) FROM conversations") == [(1,)]


async def test_set_chat_id(store: SqliteStore, db_path: Path) -> None:
    conv = await store.create_conversation(KEY, "llama3")
    await store.set_chat_id(conv.id, "chat-123")
    got = await store.get_conversation(KEY)
    assert got is not None and got.chat_id == "chat-123"
    assert got.updated_at >= conv.updated_at
    assert raw(db_path, "SELECT chat_id FROM conversations") == [("chat-123",)]
    with pytest.raises(LookupError):
        await store.set_chat_id(9999, "nope")


async def test_turn_round_trip(store: SqliteStore, db_path: Path) -> None:
    conv = await store.create_conversation(KEY, "llama3")
    assert await store.find_turn(conv.id, "m1") is None
    turn = await store.start_turn(conv.id, "m1", "u1", "a1")
    assert (turn.conversation_id, turn.platform_message_id) == (conv.id, "m1")
    assert (turn.user_message_id, turn.assistant_message_id) == ("u1", "a1")
    assert turn.status is TurnStatus.RUNNING and turn.error is None
    assert await store.find_turn(conv.id, "m1") == turn
    assert raw(db_path, "SELECT status FROM turns WHERE id = ?", (turn.id,)) == [("running",)]


async def test_duplicate_turn(store: SqliteStore, db_path: Path) -> None:
    conv = await store.create_conversation(KEY, "llama3")
    other = await store.create_conversation(OTHER, "llama3")
    await store.start_turn(conv.id, "m1", "u1", "a1")
    with pytest.raises(DuplicateTurn):
        await store.start_turn(conv.id, "m1", "u2", "a2")
    # The same platform message id in another conversation is not a duplicate.
    await store.start_turn(other.id, "m1", "u3", "a3")
    assert raw(db_path, "SELECT COUNT(*) FROM turns WHERE conversation_id = ?", (conv.id,)) == [
        (1,)
    ]


async def test_complete_turn_sets_last_answer(store: SqliteStore, db_path: Path) -> None:
    conv = await store.create_conversation(KEY, "llama3")
    turn = await store.start_turn(conv.id, "m1", "u1", "a1")
    await store.complete_turn(turn.id)
    done = await store.find_turn(conv.id, "m1")
    assert done is not None and done.status is TurnStatus.DONE
    assert done.updated_at >= turn.updated_at
    got = await store.get_conversation(KEY)
    assert got is not None and got.last_answer_id == "a1"
    assert got.updated_at >= conv.updated_at
    assert raw(db_path, "SELECT last_answer_id FROM conversations") == [("a1",)]
    # The next turn's answer takes over.
    second = await store.start_turn(conv.id, "m2", "u2", "a2")
    await store.complete_turn(second.id)
    assert raw(db_path, "SELECT last_answer_id FROM conversations") == [("a2",)]
    with pytest.raises(LookupError):
        await store.complete_turn(9999)


async def test_complete_turn_is_atomic(store: SqliteStore, db_path: Path) -> None:
    conv = await store.create_conversation(KEY, "llama3")
    turn = await store.start_turn(conv.id, "m1", "u1", "a1")
    # Make the second statement of the transaction fail, from outside the store.
    conn = sqlite3.connect(db_path)
    conn.execute(
        "CREATE TRIGGER boom BEFORE UPDATE OF last_answer_id ON conversations"
        " BEGIN SELECT RAISE(ABORT, 'boom'); END"
    )
    conn.commit()
    conn.close()
    with pytest.raises(sqlite3.IntegrityError, match="boom"):
        await store.complete_turn(turn.id)
    # The turn's status update was rolled back with it.
    assert raw(db_path, "SELECT status FROM turns") == [("running",)]
    assert raw(db_path, "SELECT last_answer_id FROM conversations") == [(None,)]
    # And the store is usable afterwards (no transaction left open).
    assert await store.claim_event("slack", "after") is True
    assert raw(db_path, "SELECT COUNT(*) FROM processed_events") == [(1,)]


async def test_fail_turn_and_unfinished(store: SqliteStore, db_path: Path) -> None:
    conv = await store.create_conversation(KEY, "llama3")
    t1 = await store.start_turn(conv.id, "m1", "u1", "a1")
    t2 = await store.start_turn(conv.id, "m2", "u2", "a2")
    t3 = await store.start_turn(conv.id, "m3", "u3", "a3")
    await store.fail_turn(t1.id, "model timed out")
    await store.complete_turn(t3.id)
    failed = await store.find_turn(conv.id, "m1")
    assert failed is not None and failed.status is TurnStatus.FAILED
    assert failed.error == "model timed out"
    assert raw(db_path, "SELECT error FROM turns WHERE id = ?", (t1.id,)) == [("model timed out",)]
    assert [t.id for t in await store.unfinished_turns()] == [t2.id]
    # A failed turn does not move the chain.
    got = await store.get_conversation(KEY)
    assert got is not None and got.last_answer_id == "a3"
    with pytest.raises(LookupError):
        await store.fail_turn(9999, "x")


async def test_turns_in_creation_order(store: SqliteStore) -> None:
    conv = await store.create_conversation(KEY, "llama3")
    other = await store.create_conversation(OTHER, "llama3")
    ids = [(await store.start_turn(conv.id, f"m{i}", f"u{i}", f"a{i}")).id for i in range(5)]
    await store.start_turn(other.id, "x", "ux", "ax")
    assert [t.id for t in await store.turns(conv.id)] == ids
    assert [t.platform_message_id for t in await store.turns(conv.id)] == [
        f"m{i}" for i in range(5)
    ]
    assert await store.turns(9999) == []


async def test_prune_events(store: SqliteStore, db_path: Path) -> None:
    for event_id in ("old1", "old2", "new"):
        await store.claim_event("slack", event_id)
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE processed_events SET received_at = 100 WHERE event_id LIKE 'old%'")
    conn.commit()
    conn.close()
    assert await store.prune_events(200.0) == 2
    assert raw(db_path, "SELECT event_id FROM processed_events") == [("new",)]
    assert await store.prune_events(200.0) == 0
    # A forgotten delivery can be claimed again.
    assert await store.claim_event("slack", "old1") is True


async def test_data_survives_restart(db_path: Path) -> None:
    first = await open_store(db_path)
    await first.claim_event("slack", "Ev1")
    conv = await first.create_conversation(KEY, "llama3")
    await first.set_chat_id(conv.id, "chat-1")
    done = await first.start_turn(conv.id, "m1", "u1", "a1")
    await first.complete_turn(done.id)
    running = await first.start_turn(conv.id, "m2", "u2", "a2")
    await first.close()
    await first.close()  # closing twice is harmless

    second = await open_store(db_path)
    try:
        assert await second.claim_event("slack", "Ev1") is False
        got = await second.get_conversation(KEY)
        assert got is not None
        assert (got.id, got.chat_id, got.last_answer_id) == (conv.id, "chat-1", "a1")
        assert await second.unfinished_turns() == [running]
        assert [t.status for t in await second.turns(conv.id)] == [
            TurnStatus.DONE,
            TurnStatus.RUNNING,
        ]
    finally:
        await second.close()


async def test_deleting_conversation_cascades_to_turns(store: SqliteStore) -> None:
    conv = await store.create_conversation(KEY, "llama3")
    await store.start_turn(conv.id, "m1", "u1", "a1")
    # No Store method deletes; use the store's connection, which has foreign_keys on.
    await store._conn.execute("DELETE FROM conversations WHERE id = ?", (conv.id,))
    assert await store.turns(conv.id) == []


async def test_conversation_by_id(store: SqliteStore) -> None:
    conversation = await store.create_conversation(KEY, "m")
    assert await store.conversation_by_id(conversation.id) == conversation
    assert await store.conversation_by_id(conversation.id + 1000) is None
