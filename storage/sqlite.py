"""``bridge.store.Store`` on one aiosqlite connection."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from bridge.events import ThreadKey
from bridge.store import (
    Conversation,
    FolderRecord,
    Held,
    NewTurn,
    RatingRecord,
    Store,
    Taken,
    ThreadBusy,
    Turn,
    TurnStatus,
)
from storage.migrations import check_not_too_new, migrate
from storage.rows import CONVERSATION_COLUMNS, NOT_FRESH, OPEN_TURNS, TURN_COLUMNS, held, pick
from storage.rows import conversation as _conversation
from storage.rows import turn as _turn

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000


class _Duplicate(Exception):
    """The platform message already has a turn (raised to roll the claim back)."""


class SqliteStore:
    """Implements ``bridge.store.Store``; build it with ``open_store``.

    Every method holds ``_lock``: the connection runs in autocommit mode, so a
    statement issued by one coroutine while another has a BEGIN open would join
    (and could be rolled back with) the other's transaction.
    """

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self._closed = False

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        # Caller holds _lock. IMMEDIATE takes the write lock up front, so a second
        # process waits on busy_timeout instead of failing mid-transaction.
        try:
            # Inside the try: a caller cancelled while BEGIN runs must not leave the
            # connection in a transaction every later statement would join.
            await self._conn.execute("BEGIN IMMEDIATE")
            yield
        except BaseException:
            if self._conn.in_transaction:
                await self._conn.execute("ROLLBACK")
            raise
        await self._conn.execute("COMMIT")

    async def _fetchone(self, sql: str, params: tuple[object, ...]) -> sqlite3.Row | None:
        async with self._conn.execute(sql, params) as cur:
            return await cur.fetchone()

    async def _fetchall(self, sql: str, params: tuple[object, ...]) -> list[sqlite3.Row]:
        async with self._conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def _write(self, sql: str, params: tuple[object, ...]) -> int:
        """Run one statement (atomic on its own); returns the number of rows changed."""
        async with self._conn.execute(sql, params) as cur:
            return cur.rowcount

    async def enqueue_turn(self, turn: NewTurn) -> Turn | None:
        try:
            return await self._enqueue(turn)
        except _Duplicate:
            return None

    async def _enqueue(self, turn: NewTurn) -> Turn | None:
        key, now = turn.key, time.time()
        async with self._lock, self._transaction():
            claimed = await self._write(
                "INSERT OR IGNORE INTO processed_events (platform, event_id, received_at)"
                " VALUES (?, ?, ?)",
                (key.platform, turn.event_id, now),
            )
            if claimed != 1:
                return None
            await self._write(
                "INSERT OR IGNORE INTO conversations"
                " (platform, workspace, channel, thread, model, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key.platform, key.workspace, key.channel, key.thread, turn.model, now, now),
            )
            conversation = await self._get_conversation(key)
            if conversation is None:  # cannot happen inside the transaction
                raise RuntimeError(f"conversation for {key} missing after insert")
            if turn.limit:
                row = await self._fetchone(
                    "SELECT COUNT(*) FROM turns WHERE conversation_id = ? AND status IN (?, ?)",
                    (conversation.id, TurnStatus.QUEUED.value, TurnStatus.RUNNING.value),
                )
                waiting = int(row[0]) if row is not None else 0
                if waiting >= turn.limit:
                    raise ThreadBusy(waiting)  # rolls back the claim and a new conversation
            # OR IGNORE: the same platform message through another delivery id is a duplicate.
            async with self._conn.execute(
                "INSERT OR IGNORE INTO turns (conversation_id, platform_message_id, sort_key,"
                " event, user_message_id, assistant_message_id, status, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation.id,
                    turn.platform_message_id,
                    turn.sort_key,
                    turn.event,
                    turn.user_message_id,
                    turn.assistant_message_id,
                    TurnStatus.QUEUED.value,
                    now,
                    now,
                ),
            ) as cur:
                if cur.rowcount != 1:
                    raise _Duplicate  # roll back the claim too: nothing is written
                turn_id = cur.lastrowid
            return None if turn_id is None else await self._get_turn(turn_id)

    async def delivered(
        self, key: ThreadKey, event_id: str, platform_message_id: str, *, or_event: str = ""
    ) -> bool:
        async with self._lock:
            row = await self._fetchone(
                "SELECT 1 FROM processed_events WHERE platform = ? AND event_id IN (?, ?)"
                " UNION ALL SELECT 1 FROM turns JOIN conversations c"
                " ON c.id = turns.conversation_id WHERE c.platform = ? AND c.workspace = ?"
                " AND c.channel = ? AND c.thread = ? AND turns.platform_message_id = ? LIMIT 1",
                (
                    key.platform,
                    event_id,
                    or_event or event_id,
                    key.platform,
                    key.workspace,
                    key.channel,
                    key.thread,
                    platform_message_id,
                ),
            )
        return row is not None

    async def claim_event(self, platform: str, event_id: str) -> bool:
        async with self._lock:
            claimed = await self._write(
                "INSERT OR IGNORE INTO processed_events (platform, event_id, received_at)"
                " VALUES (?, ?, ?)",
                (platform, event_id, time.time()),
            )
        return claimed == 1

    async def update_queued_event(self, turn_id: int, event: str) -> bool:
        async with self._lock:
            changed = await self._write(
                "UPDATE turns SET event = ?, updated_at = ? WHERE id = ? AND status = ?",
                (event, time.time(), turn_id, TurnStatus.QUEUED.value),
            )
        return changed == 1

    async def drop_queued_turn(self, turn_id: int) -> bool:
        async with self._lock:
            changed = await self._write(
                "DELETE FROM turns WHERE id = ? AND status = ?",
                (turn_id, TurnStatus.QUEUED.value),
            )
        return changed == 1

    async def take_turn(self, conversation_id: int, owner: str, lease: float) -> Taken | None:
        sql = OPEN_TURNS.format(p="?", now="")
        async with self._lock:
            # A look first, outside a transaction: a worker's last look finds nothing.
            if pick(await self._fetchall(sql, (conversation_id,)), owner, time.time()) is None:
                return None
            async with self._transaction():  # again, under the write lock
                now = time.time()
                taken = pick(await self._fetchall(sql, (conversation_id,)), owner, now)
                if taken is not None:
                    await self._write(
                        "UPDATE turns SET lease_owner = ?, lease_until = ? WHERE id = ?",
                        (owner, now + lease, taken.turn.id),
                    )
        return taken

    async def open_conversations(self, platform: str, owner: str, fresh: float = 0.0) -> list[int]:
        now = time.time()
        async with self._lock:
            rows = await self._fetchall(
                "SELECT DISTINCT c.id FROM conversations c JOIN turns t"
                " ON t.conversation_id = c.id"
                " WHERE c.platform = ? AND t.status IN ('running', 'queued')"
                f" AND {NOT_FRESH.format(p='?')}"
                " AND NOT EXISTS (SELECT 1 FROM turns l WHERE l.conversation_id = c.id"
                " AND l.status IN ('running', 'queued') AND l.lease_owner != ?"
                " AND l.lease_until > ?) ORDER BY c.id",
                (platform, now - fresh, owner, now),
            )
        return [int(row[0]) for row in rows]

    async def renew_leases(self, owner: str, lease: float) -> list[Held]:
        async with self._lock:
            rows = await self._fetchall(
                "UPDATE turns SET lease_until = ? WHERE lease_owner = ?"
                " AND status IN ('running', 'queued')"
                " RETURNING id, conversation_id, stop_requested",
                (time.time() + lease, owner),
            )
        return [held(row) for row in rows]

    async def lease_owners(self) -> list[str]:
        async with self._lock:
            rows = await self._fetchall(
                "SELECT DISTINCT lease_owner FROM turns WHERE status IN ('running', 'queued')"
                " AND lease_owner IS NOT NULL AND lease_until > ?",
                (time.time(),),
            )
        return [str(row[0]) for row in rows]

    async def release_leases(self, owner: str) -> None:
        async with self._lock:
            await self._write(
                "UPDATE turns SET lease_until = 0 WHERE lease_owner = ?"
                " AND status IN ('running', 'queued')",
                (owner,),
            )

    async def request_stop(self, turn_id: int) -> bool:
        async with self._lock:
            changed = await self._write(
                "UPDATE turns SET stop_requested = 1 WHERE id = ?"
                " AND status IN ('running', 'queued')",
                (turn_id,),
            )
        return changed == 1

    async def mark_running(self, turn_id: int) -> None:
        await self._update_turn(turn_id, "status = ?", (TurnStatus.RUNNING.value,))

    async def settle_turn(
        self, turn_id: int, status: TurnStatus, *, error: str | None, answer_id: str | None
    ) -> None:
        now = time.time()
        async with self._lock, self._transaction():
            row = await self._fetchone("SELECT conversation_id FROM turns WHERE id = ?", (turn_id,))
            if row is None:
                raise LookupError(f"no turn {turn_id}")
            await self._write(
                "UPDATE turns SET status = ?, error = ?, updated_at = ? WHERE id = ?",
                (status.value, error, now, turn_id),
            )
            if answer_id is not None:
                await self._write(
                    "UPDATE conversations SET last_answer_id = ?, updated_at = ? WHERE id = ?",
                    (answer_id, now, row["conversation_id"]),
                )

    async def set_reply_ids(self, turn_id: int, reply_ids: Sequence[str]) -> None:
        await self._update_turn(turn_id, "reply_ids = ?", (json.dumps(list(reply_ids)),))

    async def _update_turn(self, turn_id: int, assignment: str, values: tuple[object, ...]) -> None:
        async with self._lock:
            changed = await self._write(
                f"UPDATE turns SET {assignment}, updated_at = ? WHERE id = ?",
                (*values, time.time(), turn_id),
            )
        if changed == 0:
            raise LookupError(f"no turn {turn_id}")

    async def _get_conversation(self, key: ThreadKey) -> Conversation | None:
        row = await self._fetchone(
            f"SELECT {CONVERSATION_COLUMNS} FROM conversations"
            " WHERE platform = ? AND workspace = ? AND channel = ? AND thread = ?",
            (key.platform, key.workspace, key.channel, key.thread),
        )
        return None if row is None else _conversation(row)

    async def get_conversation(self, key: ThreadKey) -> Conversation | None:
        async with self._lock:
            return await self._get_conversation(key)

    async def conversation_by_id(self, conversation_id: int) -> Conversation | None:
        async with self._lock:
            row = await self._fetchone(
                f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?",
                (conversation_id,),
            )
        return None if row is None else _conversation(row)

    async def set_chat_id(self, conversation_id: int, chat_id: str) -> None:
        await self._update_conversation(conversation_id, "chat_id", chat_id)

    async def forget_chat(self, conversation_id: int) -> None:
        async with self._lock:
            await self._write(
                "UPDATE conversations SET chat_id = NULL, last_answer_id = NULL, updated_at = ?"
                " WHERE id = ?",
                (time.time(), conversation_id),
            )

    async def retire_conversation(self, key: ThreadKey) -> bool:
        async with self._lock:
            changed = await self._write(
                # The id makes the retired key unique; '#' never occurs in platform ids.
                "UPDATE conversations SET thread = thread || '#' || id, updated_at = ?"
                " WHERE platform = ? AND workspace = ? AND channel = ? AND thread = ?",
                (time.time(), key.platform, key.workspace, key.channel, key.thread),
            )
        return changed == 1

    async def reply_channel(self, key: ThreadKey) -> str | None:
        async with self._lock:
            row = await self._fetchone(
                "SELECT reply_channel FROM conversations"
                " WHERE platform = ? AND workspace = ? AND channel = ? AND thread = ?",
                (key.platform, key.workspace, key.channel, key.thread),
            )
        return None if row is None else row["reply_channel"]

    async def set_reply_channel(self, key: ThreadKey, channel: str) -> None:
        async with self._lock:
            changed = await self._write(
                "UPDATE conversations SET reply_channel = ?, updated_at = ?"
                " WHERE platform = ? AND workspace = ? AND channel = ? AND thread = ?",
                (channel, time.time(), key.platform, key.workspace, key.channel, key.thread),
            )
        if changed == 0:
            raise LookupError(f"no conversation for thread {key.thread}")

    async def _update_conversation(self, conversation_id: int, column: str, value: str) -> None:
        async with self._lock:
            changed = await self._write(
                f"UPDATE conversations SET {column} = ?, updated_at = ? WHERE id = ?",
                (value, time.time(), conversation_id),
            )
        if changed == 0:
            raise LookupError(f"no conversation {conversation_id}")

    async def _get_turn(self, turn_id: int) -> Turn | None:
        row = await self._fetchone(f"SELECT {TURN_COLUMNS} FROM turns WHERE id = ?", (turn_id,))
        return None if row is None else _turn(row)

    async def find_turn(self, conversation_id: int, platform_message_id: str) -> Turn | None:
        async with self._lock:
            row = await self._fetchone(
                f"SELECT {TURN_COLUMNS} FROM turns"
                " WHERE conversation_id = ? AND platform_message_id = ?",
                (conversation_id, platform_message_id),
            )
        return None if row is None else _turn(row)

    async def turns(self, conversation_id: int) -> list[Turn]:
        # ORDER BY id, not created_at: ids are monotonic, clock readings can tie or step back.
        async with self._lock:
            rows = await self._fetchall(
                f"SELECT {TURN_COLUMNS} FROM turns WHERE conversation_id = ? ORDER BY id",
                (conversation_id,),
            )
        return [_turn(row) for row in rows]

    async def turn_by_id(self, turn_id: int) -> Turn | None:
        async with self._lock:
            return await self._get_turn(turn_id)

    async def turn_by_reply(self, platform: str, message_id: str) -> Turn | None:
        async with self._lock:
            row = await self._fetchone(
                f"SELECT {', '.join('t.' + c for c in TURN_COLUMNS.split(', '))}"
                " FROM turns t JOIN conversations c ON c.id = t.conversation_id"
                " WHERE c.platform = ? AND t.reply_ids LIKE ?"
                " AND EXISTS (SELECT 1 FROM json_each(t.reply_ids) WHERE value = ?)"
                " ORDER BY t.id DESC LIMIT 1",
                (platform, f'%"{message_id}"%', message_id),
            )
        return None if row is None else _turn(row)

    async def get_filing(self, conversation_id: int) -> dict[str, Any]:
        async with self._lock:
            row = await self._fetchone(
                "SELECT filing FROM conversations WHERE id = ?", (conversation_id,)
            )
        if row is None:
            raise LookupError(f"no conversation {conversation_id}")
        filing = json.loads(row["filing"])
        return filing if isinstance(filing, dict) else {}

    async def set_filing(self, conversation_id: int, filing: dict[str, Any]) -> None:
        await self._update_conversation(conversation_id, "filing", json.dumps(filing))

    async def get_folder(self, platform: str, workspace: str, place: str) -> FolderRecord | None:
        async with self._lock:
            row = await self._fetchone(
                "SELECT platform, workspace, place, folder_id, name FROM folders"
                " WHERE platform = ? AND workspace = ? AND place = ?",
                (platform, workspace, place),
            )
        return None if row is None else FolderRecord(**dict(row))

    async def save_folder(self, folder: FolderRecord) -> None:
        async with self._lock:
            await self._write(
                "INSERT INTO folders (platform, workspace, place, folder_id, name)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (platform, workspace, place)"
                " DO UPDATE SET folder_id = excluded.folder_id, name = excluded.name",
                (folder.platform, folder.workspace, folder.place, folder.folder_id, folder.name),
            )

    async def get_rating(self, turn_id: int, rater: str) -> RatingRecord | None:
        async with self._lock:
            row = await self._fetchone(
                "SELECT turn_id, rater, feedback_id, vote FROM ratings"
                " WHERE turn_id = ? AND rater = ?",
                (turn_id, rater),
            )
        return None if row is None else RatingRecord(**dict(row))

    async def save_rating(self, rating: RatingRecord) -> None:
        async with self._lock:
            await self._write(
                "INSERT INTO ratings (turn_id, rater, feedback_id, vote, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (turn_id, rater) DO UPDATE SET"
                " feedback_id = excluded.feedback_id, vote = excluded.vote,"
                " updated_at = excluded.updated_at",
                (rating.turn_id, rating.rater, rating.feedback_id, rating.vote, time.time()),
            )

    async def get_upload(self, conversation_id: int, platform_file_id: str) -> str | None:
        async with self._lock:
            row = await self._fetchone(
                "SELECT entry FROM uploads WHERE conversation_id = ? AND platform_file_id = ?",
                (conversation_id, platform_file_id),
            )
        return None if row is None else str(row["entry"])

    async def save_upload(
        self, conversation_id: int, platform_file_id: str, file_id: str, entry: str
    ) -> None:
        async with self._lock:
            await self._write(
                "INSERT INTO uploads (conversation_id, platform_file_id, file_id, entry,"
                " created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (conversation_id,"
                " platform_file_id) DO UPDATE SET file_id = excluded.file_id,"
                " entry = excluded.entry",
                (conversation_id, platform_file_id, file_id, entry, time.time()),
            )

    async def delete_rating(self, turn_id: int, rater: str) -> None:
        async with self._lock:
            await self._write(
                "DELETE FROM ratings WHERE turn_id = ? AND rater = ?", (turn_id, rater)
            )

    async def prune_events(self, older_than: float) -> int:
        async with self._lock:
            return await self._write(
                "DELETE FROM processed_events WHERE received_at < ?", (older_than,)
            )

    async def writable(self) -> bool:
        async with self._lock, self._transaction():
            # Writing the schema version back as it is: a real write, nothing changed.
            async with self._conn.execute("PRAGMA user_version") as cur:
                row = await cur.fetchone()
            await self._conn.execute(f"PRAGMA user_version = {int(row[0]) if row else 0:d}")
        return True

    async def close(self) -> None:
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            await self._conn.close()


async def _enable_wal(conn: aiosqlite.Connection) -> Any:
    # Switching to WAL needs a moment of exclusive access and does not wait on
    # busy_timeout, so a second process opening the file at once retries.
    for attempt in range(50):
        try:
            async with conn.execute("PRAGMA journal_mode = WAL") as cur:
                return await cur.fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            await asyncio.sleep(0.05)
    return None


MEMORY = ":memory:"
PRIVATE = 0o600  # the database holds who asked what: only its owner reads it


def _private(path: Path) -> None:
    """Create the database file readable by its owner only (SQLite gives its -wal and
    -shm files the same mode), and tighten an existing file that is more open."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, PRIVATE)
    try:
        if os.fstat(fd).st_mode & 0o777 != PRIVATE:
            os.fchmod(fd, PRIVATE)
            log.info("database %s made readable by its owner only (mode 0600)", path)
    finally:
        os.close(fd)


async def open_store(path: str | Path) -> SqliteStore:
    """Open (creating if needed) the database at ``path`` and bring its schema up to
    date. ``":memory:"`` gives a private in-memory database (for fast tests)."""
    in_memory = str(path) == MEMORY
    if not in_memory:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _private(path)
    # isolation_level=None: autocommit, so our explicit BEGIN/COMMIT are the only
    # transactions (sqlite3's implicit BEGIN would otherwise wrap stray statements).
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        # Refuse a too-new database before journal_mode=WAL, which rewrites its header.
        await check_not_too_new(conn)
        row = None if in_memory else await _enable_wal(conn)
        if not in_memory and (row is None or str(row[0]).lower() != "wal"):
            raise RuntimeError(f"could not enable WAL on {path}: journal_mode={row!r}")
        await conn.execute("PRAGMA foreign_keys = ON")
        # NORMAL is durable across application crashes in WAL mode; only a power
        # loss can drop the last commits, which is an acceptable trade for speed.
        await conn.execute("PRAGMA synchronous = NORMAL")
        await migrate(conn)
    except BaseException:
        await conn.close()
        raise
    return SqliteStore(conn)


# mypy holds the implementation to the core's interface here (tests are not type-checked).
_IMPLEMENTS: type[Store] = SqliteStore
