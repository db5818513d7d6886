"""Numbered schema upgrades for the SQLite store.

The schema version lives in ``PRAGMA user_version``: it is part of the database
header, so writing it inside a transaction commits or rolls back together with
the step's DDL. ``STEPS[n - 1]`` upgrades a database from version ``n - 1`` to
``n``; steps are append-only, never edit one that has shipped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import aiosqlite

Step = Callable[[aiosqlite.Connection], Awaitable[None]]


class SchemaTooNew(RuntimeError):
    """The database was written by a newer release; we refuse to touch it."""

    def __init__(self, found: int, supported: int) -> None:
        super().__init__(
            f"database schema version {found} is newer than this code supports "
            f"(latest known version {supported}); upgrade owui-bridge"
        )
        self.found = found
        self.supported = supported


async def _v1_initial(conn: aiosqlite.Connection) -> None:
    # One execute per statement: sqlite3's executescript() would COMMIT first and
    # break the all-or-nothing guarantee of the runner's transaction.
    for sql in (
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            workspace TEXT NOT NULL,
            channel TEXT NOT NULL,
            thread TEXT NOT NULL,
            chat_id TEXT NULL,
            last_answer_id TEXT NULL,
            model TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (platform, workspace, channel, thread)
        )
        """,
        """
        CREATE TABLE turns (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL
                REFERENCES conversations (id) ON DELETE CASCADE,
            platform_message_id TEXT NOT NULL,
            user_message_id TEXT NOT NULL,
            assistant_message_id TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
            error TEXT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (conversation_id, platform_message_id)
        )
        """,
        # unfinished_turns() scans by status at every start-up.
        "CREATE INDEX turns_status ON turns (status)",
        """
        CREATE TABLE processed_events (
            platform TEXT NOT NULL,
            event_id TEXT NOT NULL,
            received_at REAL NOT NULL,
            PRIMARY KEY (platform, event_id)
        )
        """,
        # prune_events() deletes by age.
        "CREATE INDEX processed_events_received_at ON processed_events (received_at)",
    ):
        await conn.execute(sql)


async def _v2_durable_queue(conn: aiosqlite.Connection) -> None:
    # Turns become a durable queue: 'queued' and 'stopped' statuses, the event to
    # run later, its place in the thread, and the platform messages the answer
    # occupies. SQLite cannot change a CHECK constraint in place: rebuild the table.
    for sql in (
        """
        CREATE TABLE turns_v2 (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL
                REFERENCES conversations (id) ON DELETE CASCADE,
            platform_message_id TEXT NOT NULL,
            sort_key TEXT NOT NULL DEFAULT '',
            event TEXT NULL,
            user_message_id TEXT NOT NULL,
            assistant_message_id TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('queued', 'running', 'done', 'stopped', 'failed')),
            reply_ids TEXT NOT NULL DEFAULT '[]',
            error TEXT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (conversation_id, platform_message_id)
        )
        """,
        """
        INSERT INTO turns_v2 (id, conversation_id, platform_message_id, user_message_id,
            assistant_message_id, status, error, created_at, updated_at)
        SELECT id, conversation_id, platform_message_id, user_message_id,
            assistant_message_id, status, error, created_at, updated_at FROM turns
        """,
        "DROP TABLE turns",
        "ALTER TABLE turns_v2 RENAME TO turns",
        "CREATE INDEX turns_status ON turns (status)",
        # next_turn() reads a conversation's open turns in platform order.
        "CREATE INDEX turns_queue ON turns (conversation_id, status, sort_key, id)",
    ):
        await conn.execute(sql)


async def _v3_admin(conn: aiosqlite.Connection) -> None:
    # What admins see in Open WebUI: where each chat is filed (folder per channel,
    # tags, link) and the ratings people gave answers with reactions.
    for sql in (
        "ALTER TABLE conversations ADD COLUMN filing TEXT NOT NULL DEFAULT '{}'",
        """
        CREATE TABLE folders (
            platform TEXT NOT NULL,
            workspace TEXT NOT NULL,
            place TEXT NOT NULL,
            folder_id TEXT NOT NULL,
            name TEXT NOT NULL,
            PRIMARY KEY (platform, workspace, place)
        )
        """,
        """
        CREATE TABLE ratings (
            turn_id INTEGER NOT NULL REFERENCES turns (id) ON DELETE CASCADE,
            rater TEXT NOT NULL,
            feedback_id TEXT NOT NULL,
            vote INTEGER NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (turn_id, rater)
        )
        """,
    ):
        await conn.execute(sql)


async def _v4_reply_channel(conn: aiosqlite.Connection) -> None:
    # Where a conversation's answers go when its own thread could not be opened (the
    # channel its question was asked in); NULL: the thread.
    await conn.execute("ALTER TABLE conversations ADD COLUMN reply_channel TEXT NULL")


async def _v5_uploads(conn: aiosqlite.Connection) -> None:
    # A file sent with a question, uploaded to Open WebUI once per thread: a retry or a
    # restart between upload and answer reuses it. ``entry``: the chat's file item (JSON).
    await conn.execute(
        """
        CREATE TABLE uploads (
            conversation_id INTEGER NOT NULL
                REFERENCES conversations (id) ON DELETE CASCADE,
            platform_file_id TEXT NOT NULL,
            file_id TEXT NOT NULL,
            entry TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (conversation_id, platform_file_id)
        )
        """
    )


STEPS: tuple[Step, ...] = (
    _v1_initial,
    _v2_durable_queue,
    _v3_admin,
    _v4_reply_channel,
    _v5_uploads,
)
LATEST_VERSION = len(STEPS)


async def schema_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def check_not_too_new(conn: aiosqlite.Connection, latest: int = LATEST_VERSION) -> int:
    """Return the current version, or raise ``SchemaTooNew`` without writing anything."""
    found = await schema_version(conn)
    if found > latest:
        raise SchemaTooNew(found, latest)
    return found


async def migrate(conn: aiosqlite.Connection, steps: Sequence[Step] = STEPS) -> int:
    """Bring the database up to ``len(steps)``; returns the final version.

    ``conn`` must be in autocommit mode (``isolation_level=None``) so the runner
    owns BEGIN/COMMIT. ``steps`` is a parameter so tests can inject a failing step.
    """
    latest = len(steps)
    await check_not_too_new(conn, latest)
    while True:
        # BEGIN IMMEDIATE takes the write lock before re-reading the version, so
        # two processes starting together cannot both apply the same step.
        await conn.execute("BEGIN IMMEDIATE")
        try:
            current = await check_not_too_new(conn, latest)
            if current == latest:
                await conn.execute("COMMIT")
                return current
            await steps[current](conn)
            # PRAGMA arguments cannot be bound parameters; it is our own int.
            await conn.execute(f"PRAGMA user_version = {current + 1:d}")
            await conn.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back on its own (e.g. SQLITE_FULL).
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            raise
