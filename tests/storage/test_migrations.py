"""The migration runners on real SQLite files and real PostgreSQL databases."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import asyncpg
import pytest

from bridge.store import TurnStatus
from storage import SchemaTooNew, open_store
from storage.migrations import LATEST_VERSION, STEPS, Step, migrate, schema_version
from storage.postgres import migrate as pg_migrate
from storage.postgres import schema_version as pg_schema_version

LATEST_OBJECTS = {
    ("table", "conversations"),
    ("table", "turns"),
    ("table", "processed_events"),
    ("table", "folders"),
    ("table", "ratings"),
    ("table", "uploads"),
    ("index", "turns_status"),
    ("index", "turns_queue"),
    ("index", "processed_events_received_at"),
}


def objects(path: Path) -> set[tuple[str, str]]:
    """Named schema objects, minus SQLite's own automatic indexes."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        ).fetchall()
    finally:
        conn.close()
    return {(t, n) for t, n in rows}


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
async def conn(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    c = await aiosqlite.connect(tmp_path / "m.db", isolation_level=None)
    yield c
    await c.close()


async def test_fresh_database_ends_at_latest(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    store = await open_store(path)
    await store.close()
    assert LATEST_VERSION == len(STEPS) >= 1
    assert user_version(path) == LATEST_VERSION
    assert objects(path) >= LATEST_OBJECTS


async def test_version_zero_database_upgrades(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    # A real, initialised SQLite file at version 0 with no tables.
    sqlite3.connect(path).close()
    conn = sqlite3.connect(path)
    conn.execute("VACUUM")  # forces the header to be written
    conn.close()
    assert user_version(path) == 0 and objects(path) == set()
    store = await open_store(path)
    await store.close()
    assert user_version(path) == LATEST_VERSION
    assert objects(path) == LATEST_OBJECTS


async def test_reopening_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "again.db"
    await (await open_store(path)).close()
    before = objects(path)
    await (await open_store(path)).close()
    assert objects(path) == before and user_version(path) == LATEST_VERSION


async def test_too_new_database_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    newer = LATEST_VERSION + 1
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE from_the_future (x)")
    conn.execute(f"PRAGMA user_version = {newer}")
    conn.commit()
    conn.close()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    with pytest.raises(SchemaTooNew) as info:
        await open_store(path)
    assert str(newer) in str(info.value) and str(LATEST_VERSION) in str(info.value)
    assert (info.value.found, info.value.supported) == (newer, LATEST_VERSION)

    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert not path.with_name("future.db-wal").exists()
    assert raw_journal_mode(path) == "delete"  # WAL was not switched on
    assert objects(path) == {("table", "from_the_future")}


def raw_journal_mode(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


async def test_runner_refuses_too_new(conn: aiosqlite.Connection, tmp_path: Path) -> None:
    await conn.execute("PRAGMA user_version = 5")
    with pytest.raises(SchemaTooNew, match="5"):
        await migrate(conn, STEPS[:1])
    assert await schema_version(conn) == 5
    assert objects(tmp_path / "m.db") == set()


async def _create_half_and_fail(conn: aiosqlite.Connection) -> None:
    await conn.execute("CREATE TABLE half_done (x)")
    await conn.execute("INSERT INTO half_done VALUES (1)")
    raise RuntimeError("step 2 broke")


async def test_failing_step_rolls_back(conn: aiosqlite.Connection, tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with pytest.raises(RuntimeError, match="step 2 broke"):
        await migrate(conn, (*STEPS[:1], _create_half_and_fail))
    # Step 1 committed on its own; step 2 left nothing behind.
    assert await schema_version(conn) == 1
    assert not conn.in_transaction
    version_1 = LATEST_OBJECTS - {
        ("index", "turns_queue"),
        ("table", "folders"),
        ("table", "ratings"),
        ("table", "uploads"),
    }
    assert objects(path) == version_1
    assert user_version(path) == 1


async def test_failing_first_step_leaves_empty_database(
    conn: aiosqlite.Connection, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError):
        await migrate(conn, (_create_half_and_fail,))
    assert await schema_version(conn) == 0
    assert objects(tmp_path / "m.db") == set()


async def test_sql_error_in_step_rolls_back(conn: aiosqlite.Connection, tmp_path: Path) -> None:
    async def bad_sql(c: aiosqlite.Connection) -> None:
        await c.execute("CREATE TABLE ok_so_far (x)")
        await c.execute("CREATE TABLE conversations (x)")  # already exists → error

    with pytest.raises(sqlite3.OperationalError):
        await migrate(conn, (*STEPS, bad_sql))
    assert await schema_version(conn) == LATEST_VERSION
    assert ("table", "ok_so_far") not in objects(tmp_path / "m.db")


async def test_custom_steps_apply_in_order(conn: aiosqlite.Connection) -> None:
    async def extra(c: aiosqlite.Connection) -> None:
        await c.execute("ALTER TABLE conversations ADD COLUMN note TEXT")

    assert await migrate(conn, (*STEPS, extra)) == LATEST_VERSION + 1
    async with conn.execute("SELECT name FROM pragma_table_info('conversations')") as cur:
        columns = [r[0] for r in await cur.fetchall()]
    assert "note" in columns
    # Running again with the same list does nothing.
    assert await migrate(conn, (*STEPS, extra)) == LATEST_VERSION + 1
    # Code that only knows the shipped steps must now refuse this database.
    with pytest.raises(SchemaTooNew):
        await migrate(conn, STEPS)


async def test_concurrent_first_open(tmp_path: Path) -> None:
    # Two processes starting on a missing file: BEGIN IMMEDIATE serialises the upgrade.
    path = tmp_path / "race.db"
    stores = await asyncio.gather(open_store(path), open_store(path))
    for s in stores:
        await s.close()
    assert user_version(path) == LATEST_VERSION
    assert objects(path) == LATEST_OBJECTS


# PostgreSQL: the same numbered steps, the version in ``bridge_schema``.


async def pg_objects(url: str) -> set[tuple[str, str]]:
    """Tables and named indexes, minus the bridge's version table and the indexes
    PostgreSQL makes for keys and unique constraints."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT CASE c.relkind WHEN 'r' THEN 'table' ELSE 'index' END, c.relname"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')"
            " AND c.relname <> 'bridge_schema'"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)"
        )
    finally:
        await conn.close()
    return {(r[0], r[1]) for r in rows}


async def pg_version(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await pg_schema_version(conn)
    finally:
        await conn.close()


async def test_postgres_fresh_database_ends_at_latest(postgres_url: str) -> None:
    store = await open_store(postgres_url)
    await store.close()
    assert await pg_version(postgres_url) == LATEST_VERSION
    assert await pg_objects(postgres_url) == LATEST_OBJECTS
    await (await open_store(postgres_url)).close()  # reopening changes nothing
    assert await pg_objects(postgres_url) == LATEST_OBJECTS


async def test_postgres_too_new_database_is_refused_and_untouched(postgres_url: str) -> None:
    newer = LATEST_VERSION + 1
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("CREATE TABLE bridge_schema (version INTEGER NOT NULL)")
        await conn.execute("INSERT INTO bridge_schema VALUES ($1)", newer)
        await conn.execute("CREATE TABLE from_the_future (x INTEGER)")
    finally:
        await conn.close()
    with pytest.raises(SchemaTooNew) as info:
        await open_store(postgres_url)
    assert (info.value.found, info.value.supported) == (newer, LATEST_VERSION)
    assert await pg_version(postgres_url) == newer
    assert await pg_objects(postgres_url) == {("table", "from_the_future")}


async def test_postgres_failing_step_rolls_back(postgres_url: str) -> None:
    broken = Step(sqlite=(), postgres=("CREATE TABLE half_done (x INTEGER)", "SELECT 1/0"))
    conn = await asyncpg.connect(postgres_url)
    try:
        with pytest.raises(asyncpg.DivisionByZeroError):
            await pg_migrate(conn, (*STEPS[:1], broken))
        # Step 1 committed on its own; step 2 left nothing behind.
        assert await pg_schema_version(conn) == 1
    finally:
        await conn.close()
    assert ("table", "half_done") not in await pg_objects(postgres_url)
    assert ("table", "turns") in await pg_objects(postgres_url)


async def test_postgres_custom_steps_apply_then_older_code_refuses(postgres_url: str) -> None:
    extra = Step(sqlite=(), postgres=("ALTER TABLE conversations ADD COLUMN note TEXT",))
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await pg_migrate(conn, (*STEPS, extra)) == LATEST_VERSION + 1
        assert await pg_migrate(conn, (*STEPS, extra)) == LATEST_VERSION + 1
        with pytest.raises(SchemaTooNew):
            await pg_migrate(conn, STEPS)
    finally:
        await conn.close()


async def test_postgres_concurrent_first_open(postgres_url: str) -> None:
    stores = await asyncio.gather(*(open_store(postgres_url) for _ in range(3)))
    for s in stores:
        await s.close()
    assert await pg_version(postgres_url) == LATEST_VERSION
    assert await pg_objects(postgres_url) == LATEST_OBJECTS


async def test_postgres_schema_1_turns_are_kept_by_the_upgrade(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        await pg_migrate(conn, STEPS[:1])
        await conn.execute(
            "INSERT INTO conversations (id, platform, workspace, channel, thread, chat_id,"
            " last_answer_id, model, created_at, updated_at)"
            " VALUES (1, 'slack', 'T1', 'C1', 't1', 'chat', 'a0', 'm', 1, 1)"
        )
        await conn.execute(
            "INSERT INTO turns (id, conversation_id, platform_message_id, user_message_id,"
            " assistant_message_id, status, created_at, updated_at) VALUES"
            " (1, 1, 'm0', 'u0', 'a0', 'done', 1, 1), (2, 1, 'm1', 'u1', 'a1', 'running', 2, 2)"
        )
    finally:
        await conn.close()
    store = await open_store(postgres_url)
    try:
        taken = await store.take_turn(1, "me", 30)
        cut_off = taken.turn if taken else None
        assert cut_off is not None and cut_off.id == 2 and cut_off.status is TurnStatus.RUNNING
        assert cut_off.event is None and cut_off.reply_ids == ()
        assert [t.status for t in await store.turns(1)] == [TurnStatus.DONE, TurnStatus.RUNNING]
    finally:
        await store.close()
