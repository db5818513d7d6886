"""``bridge.store.Store`` on PostgreSQL (asyncpg, a connection pool).

Every write that must happen once is one statement the database decides: a
delivery is claimed by ``INSERT … ON CONFLICT DO NOTHING``, a turn is queued in one
transaction that holds its conversation's row lock (so a thread's limit and its
turns cannot race), and a conditional ``UPDATE … WHERE status = 'queued'`` changes a
turn only while it waits. Several bridge processes share one database: each open
turn is leased to one of them (``take_turn``, with the thread's open turns locked),
on the database's clock.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

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
from storage.migrations import STEPS, SchemaTooNew, Step
from storage.rows import (
    CONVERSATION_COLUMNS,
    NOT_FRESH,
    OPEN_TURNS,
    TURN_COLUMNS,
    conversation,
    held,
    pick,
    turn,
)

log = logging.getLogger(__name__)

SCHEMES = ("postgresql://", "postgres://")
POOL_MIN, POOL_MAX = 2, 10
# Serialises schema upgrades of processes starting together (any constant will do).
_MIGRATION_LOCK = 0x6F77_7569
_THREAD = "platform = $1 AND workspace = $2 AND channel = $3 AND thread = $4"
# Leases run on the database's clock, the one clock every replica shares.
_NOW = "SELECT extract(epoch FROM clock_timestamp())::double precision"
_T_COLUMNS = ", ".join("t." + c for c in TURN_COLUMNS.split(", "))


def is_postgres(database: str) -> bool:
    return database.startswith(SCHEMES)


def masked(url: str) -> str:
    """The URL with its password replaced, for log lines and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def password_of(url: str) -> str | None:
    return urlsplit(url).password if is_postgres(url) else None


def _key(key: ThreadKey) -> tuple[str, str, str, str]:
    return (key.platform, key.workspace, key.channel, key.thread)


class DatabaseUnavailable(ConnectionError):
    """The database could not be reached or refused us; the message names it without
    its password."""


class _Duplicate(Exception):
    """The platform message already has a turn (raised to roll the claim back)."""


class PostgresStore:
    """Implements ``bridge.store.Store``; build it with ``open_postgres``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def _fetchrow(self, sql: str, *args: object) -> Any:
        async with self._pool.acquire() as conn:
            return await conn.fetchrow(sql, *args)

    async def _fetch(self, sql: str, *args: object) -> list[Any]:
        async with self._pool.acquire() as conn:
            return list(await conn.fetch(sql, *args))

    async def _write(self, sql: str, *args: object) -> int:
        """Run one statement; returns the number of rows it changed."""
        async with self._pool.acquire() as conn:
            status: str = await conn.execute(sql, *args)
        return int(status.rsplit(" ", 1)[-1])

    async def enqueue_turn(self, turn: NewTurn) -> Turn | None:
        try:
            return await self._enqueue(turn)
        except _Duplicate:
            return None

    async def _enqueue(self, new: NewTurn) -> Turn | None:
        now = time.time()
        async with self._pool.acquire() as conn, conn.transaction():
            claimed = await conn.fetchval(
                "INSERT INTO processed_events (platform, event_id, received_at)"
                " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1",
                new.key.platform,
                new.event_id,
                now,
            )
            if claimed is None:
                return None
            await conn.execute(
                "INSERT INTO conversations (platform, workspace, channel, thread, model,"
                " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)"
                " ON CONFLICT DO NOTHING",
                *_key(new.key),
                new.model,
                now,
            )
            # The row lock queues the thread's writers: its limit and turns cannot race.
            conversation_id = await conn.fetchval(
                f"SELECT id FROM conversations WHERE {_THREAD} FOR UPDATE", *_key(new.key)
            )
            if conversation_id is None:  # cannot happen inside the transaction
                raise RuntimeError(f"conversation for {new.key} missing after insert")
            if new.limit:
                waiting = await conn.fetchval(
                    "SELECT COUNT(*) FROM turns WHERE conversation_id = $1"
                    " AND status IN ('queued', 'running')",
                    conversation_id,
                )
                if waiting >= new.limit:
                    raise ThreadBusy(int(waiting))  # rolls back the claim and a new conversation
            row = await conn.fetchrow(
                "INSERT INTO turns (conversation_id, platform_message_id, sort_key, event,"
                " user_message_id, assistant_message_id, status, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $7) ON CONFLICT DO NOTHING"
                f" RETURNING {TURN_COLUMNS}",
                conversation_id,
                new.platform_message_id,
                new.sort_key,
                new.event,
                new.user_message_id,
                new.assistant_message_id,
                now,
            )
            if row is None:
                raise _Duplicate  # roll back the claim too: nothing is written
            return turn(row)

    async def delivered(
        self, key: ThreadKey, event_id: str, platform_message_id: str, *, or_event: str = ""
    ) -> bool:
        row = await self._fetchrow(
            "SELECT 1 FROM processed_events WHERE platform = $1 AND event_id IN ($5, $7)"
            " UNION ALL SELECT 1 FROM turns t JOIN conversations c"
            " ON c.id = t.conversation_id WHERE c.platform = $1 AND c.workspace = $2"
            " AND c.channel = $3 AND c.thread = $4 AND t.platform_message_id = $6 LIMIT 1",
            *_key(key),
            event_id,
            platform_message_id,
            or_event or event_id,
        )
        return row is not None

    async def claim_event(self, platform: str, event_id: str) -> bool:
        claimed = await self._write(
            "INSERT INTO processed_events (platform, event_id, received_at)"
            " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            platform,
            event_id,
            time.time(),
        )
        return claimed == 1

    async def update_queued_event(self, turn_id: int, event: str) -> bool:
        changed = await self._write(
            "UPDATE turns SET event = $1, updated_at = $2 WHERE id = $3 AND status = 'queued'",
            event,
            time.time(),
            turn_id,
        )
        return changed == 1

    async def drop_queued_turn(self, turn_id: int) -> bool:
        changed = await self._write(
            "DELETE FROM turns WHERE id = $1 AND status = 'queued'", turn_id
        )
        return changed == 1

    async def take_turn(self, conversation_id: int, owner: str, lease: float) -> Taken | None:
        sql = OPEN_TURNS.format(p="$1", now=f", ({_NOW}) AS now")
        async with self._pool.acquire() as conn:
            # A look first, without locks: a worker's last look finds nothing.
            rows = list(await conn.fetch(sql, conversation_id))
            if not rows or pick(rows, owner, rows[0]["now"]) is None:
                return None
            async with conn.transaction():
                # Again with the open turns locked: of two replicas taking at once the
                # second waits, then sees the first's lease.
                rows = list(await conn.fetch(sql + " FOR UPDATE", conversation_id))
                taken = pick(rows, owner, rows[0]["now"]) if rows else None
                if taken is not None:
                    await conn.execute(
                        "UPDATE turns SET lease_owner = $1, lease_until = $2 WHERE id = $3",
                        owner,
                        rows[0]["now"] + lease,
                        taken.turn.id,
                    )
        return taken

    async def open_conversations(self, platform: str, owner: str, fresh: float = 0.0) -> list[int]:
        rows = await self._fetch(
            "SELECT DISTINCT c.id FROM conversations c JOIN turns t"
            " ON t.conversation_id = c.id"
            " WHERE c.platform = $1 AND t.status IN ('running', 'queued')"
            f" AND {NOT_FRESH.format(p='$3')}"
            " AND NOT EXISTS (SELECT 1 FROM turns l WHERE l.conversation_id = c.id"
            " AND l.status IN ('running', 'queued') AND l.lease_owner != $2"
            f" AND l.lease_until > ({_NOW})) ORDER BY c.id",
            platform,
            owner,
            time.time() - fresh,
        )
        return [int(row[0]) for row in rows]

    async def renew_leases(self, owner: str, lease: float) -> list[Held]:
        rows = await self._fetch(
            f"UPDATE turns SET lease_until = ({_NOW}) + $2 WHERE lease_owner = $1"
            " AND status IN ('running', 'queued')"
            " RETURNING id, conversation_id, stop_requested",
            owner,
            lease,
        )
        return [held(row) for row in rows]

    async def lease_owners(self) -> list[str]:
        rows = await self._fetch(
            "SELECT DISTINCT lease_owner FROM turns WHERE status IN ('running', 'queued')"
            f" AND lease_owner IS NOT NULL AND lease_until > ({_NOW})"
        )
        return [str(row[0]) for row in rows]

    async def release_leases(self, owner: str) -> None:
        await self._write(
            "UPDATE turns SET lease_until = 0 WHERE lease_owner = $1"
            " AND status IN ('running', 'queued')",
            owner,
        )

    async def request_stop(self, turn_id: int) -> bool:
        changed = await self._write(
            "UPDATE turns SET stop_requested = 1 WHERE id = $1 AND status IN ('running', 'queued')",
            turn_id,
        )
        return changed == 1

    async def mark_running(self, turn_id: int) -> None:
        await self._update_turn(turn_id, "status", TurnStatus.RUNNING.value)

    async def settle_turn(
        self, turn_id: int, status: TurnStatus, *, error: str | None, answer_id: str | None
    ) -> None:
        now = time.time()
        async with self._pool.acquire() as conn, conn.transaction():
            conversation_id = await conn.fetchval(
                "UPDATE turns SET status = $1, error = $2, updated_at = $3 WHERE id = $4"
                " RETURNING conversation_id",
                status.value,
                error,
                now,
                turn_id,
            )
            if conversation_id is None:
                raise LookupError(f"no turn {turn_id}")
            if answer_id is not None:
                await conn.execute(
                    "UPDATE conversations SET last_answer_id = $1, updated_at = $2 WHERE id = $3",
                    answer_id,
                    now,
                    conversation_id,
                )

    async def set_reply_ids(self, turn_id: int, reply_ids: Sequence[str]) -> None:
        await self._update_turn(turn_id, "reply_ids", json.dumps(list(reply_ids)))

    async def _update_turn(self, turn_id: int, column: str, value: str) -> None:
        changed = await self._write(
            f"UPDATE turns SET {column} = $1, updated_at = $2 WHERE id = $3",
            value,
            time.time(),
            turn_id,
        )
        if changed == 0:
            raise LookupError(f"no turn {turn_id}")

    async def get_conversation(self, key: ThreadKey) -> Conversation | None:
        row = await self._fetchrow(
            f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE {_THREAD}", *_key(key)
        )
        return None if row is None else conversation(row)

    async def conversation_by_id(self, conversation_id: int) -> Conversation | None:
        row = await self._fetchrow(
            f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1", conversation_id
        )
        return None if row is None else conversation(row)

    async def set_chat_id(self, conversation_id: int, chat_id: str) -> None:
        await self._update_conversation(conversation_id, "chat_id", chat_id)

    async def forget_chat(self, conversation_id: int) -> None:
        await self._write(
            "UPDATE conversations SET chat_id = NULL, last_answer_id = NULL, updated_at = $1"
            " WHERE id = $2",
            time.time(),
            conversation_id,
        )

    async def retire_conversation(self, key: ThreadKey) -> bool:
        changed = await self._write(
            # The id makes the retired key unique; '#' never occurs in platform ids.
            f"UPDATE conversations SET thread = thread || '#' || id, updated_at = $5"
            f" WHERE {_THREAD}",
            *_key(key),
            time.time(),
        )
        return changed == 1

    async def reply_channel(self, key: ThreadKey) -> str | None:
        row = await self._fetchrow(
            f"SELECT reply_channel FROM conversations WHERE {_THREAD}", *_key(key)
        )
        return None if row is None else row["reply_channel"]

    async def set_reply_channel(self, key: ThreadKey, channel: str) -> None:
        changed = await self._write(
            f"UPDATE conversations SET reply_channel = $5, updated_at = $6 WHERE {_THREAD}",
            *_key(key),
            channel,
            time.time(),
        )
        if changed == 0:
            raise LookupError(f"no conversation for thread {key.thread}")

    async def _update_conversation(self, conversation_id: int, column: str, value: str) -> None:
        changed = await self._write(
            f"UPDATE conversations SET {column} = $1, updated_at = $2 WHERE id = $3",
            value,
            time.time(),
            conversation_id,
        )
        if changed == 0:
            raise LookupError(f"no conversation {conversation_id}")

    async def find_turn(self, conversation_id: int, platform_message_id: str) -> Turn | None:
        row = await self._fetchrow(
            f"SELECT {TURN_COLUMNS} FROM turns"
            " WHERE conversation_id = $1 AND platform_message_id = $2",
            conversation_id,
            platform_message_id,
        )
        return None if row is None else turn(row)

    async def turns(self, conversation_id: int) -> list[Turn]:
        # ORDER BY id, not created_at: ids are monotonic, clock readings can tie or step back.
        rows = await self._fetch(
            f"SELECT {TURN_COLUMNS} FROM turns WHERE conversation_id = $1 ORDER BY id",
            conversation_id,
        )
        return [turn(row) for row in rows]

    async def turn_by_id(self, turn_id: int) -> Turn | None:
        row = await self._fetchrow(f"SELECT {TURN_COLUMNS} FROM turns WHERE id = $1", turn_id)
        return None if row is None else turn(row)

    async def turn_by_reply(self, platform: str, message_id: str) -> Turn | None:
        row = await self._fetchrow(
            f"SELECT {_T_COLUMNS} FROM turns t JOIN conversations c ON c.id = t.conversation_id"
            " WHERE c.platform = $1 AND t.reply_ids LIKE $2 AND t.reply_ids::jsonb ? $3"
            " ORDER BY t.id DESC LIMIT 1",
            platform,
            f'%"{message_id}"%',
            message_id,
        )
        return None if row is None else turn(row)

    async def get_filing(self, conversation_id: int) -> dict[str, Any]:
        row = await self._fetchrow(
            "SELECT filing FROM conversations WHERE id = $1", conversation_id
        )
        if row is None:
            raise LookupError(f"no conversation {conversation_id}")
        filing = json.loads(row["filing"])
        return filing if isinstance(filing, dict) else {}

    async def set_filing(self, conversation_id: int, filing: dict[str, Any]) -> None:
        await self._update_conversation(conversation_id, "filing", json.dumps(filing))

    async def get_folder(self, platform: str, workspace: str, place: str) -> FolderRecord | None:
        row = await self._fetchrow(
            "SELECT platform, workspace, place, folder_id, name FROM folders"
            " WHERE platform = $1 AND workspace = $2 AND place = $3",
            platform,
            workspace,
            place,
        )
        return None if row is None else FolderRecord(**dict(row))

    async def save_folder(self, folder: FolderRecord) -> None:
        await self._write(
            "INSERT INTO folders (platform, workspace, place, folder_id, name)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (platform, workspace, place)"
            " DO UPDATE SET folder_id = excluded.folder_id, name = excluded.name",
            folder.platform,
            folder.workspace,
            folder.place,
            folder.folder_id,
            folder.name,
        )

    async def get_rating(self, turn_id: int, rater: str) -> RatingRecord | None:
        row = await self._fetchrow(
            "SELECT turn_id, rater, feedback_id, vote FROM ratings"
            " WHERE turn_id = $1 AND rater = $2",
            turn_id,
            rater,
        )
        return None if row is None else RatingRecord(**dict(row))

    async def save_rating(self, rating: RatingRecord) -> None:
        await self._write(
            "INSERT INTO ratings (turn_id, rater, feedback_id, vote, updated_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (turn_id, rater) DO UPDATE SET"
            " feedback_id = excluded.feedback_id, vote = excluded.vote,"
            " updated_at = excluded.updated_at",
            rating.turn_id,
            rating.rater,
            rating.feedback_id,
            rating.vote,
            time.time(),
        )

    async def delete_rating(self, turn_id: int, rater: str) -> None:
        await self._write("DELETE FROM ratings WHERE turn_id = $1 AND rater = $2", turn_id, rater)

    async def get_upload(self, conversation_id: int, platform_file_id: str) -> str | None:
        row = await self._fetchrow(
            "SELECT entry FROM uploads WHERE conversation_id = $1 AND platform_file_id = $2",
            conversation_id,
            platform_file_id,
        )
        return None if row is None else str(row["entry"])

    async def save_upload(
        self, conversation_id: int, platform_file_id: str, file_id: str, entry: str
    ) -> None:
        await self._write(
            "INSERT INTO uploads (conversation_id, platform_file_id, file_id, entry,"
            " created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (conversation_id,"
            " platform_file_id) DO UPDATE SET file_id = excluded.file_id,"
            " entry = excluded.entry",
            conversation_id,
            platform_file_id,
            file_id,
            entry,
            time.time(),
        )

    async def prune_events(self, older_than: float) -> int:
        return await self._write("DELETE FROM processed_events WHERE received_at < $1", older_than)

    async def writable(self) -> bool:
        # Writing the schema version back as it is: a real write round trip (a
        # read-only standby refuses it), nothing changed.
        await self._write("UPDATE bridge_schema SET version = version")
        return True

    async def close(self) -> None:
        await self._pool.close()  # a second close is a no-op in asyncpg


async def schema_version(conn: asyncpg.Connection) -> int:
    """The version recorded in ``bridge_schema`` (0: a database the bridge never touched)."""
    exists = await conn.fetchval("SELECT to_regclass('bridge_schema') IS NOT NULL")
    if not exists:
        return 0
    version = await conn.fetchval("SELECT version FROM bridge_schema")
    return int(version or 0)


async def migrate(conn: asyncpg.Connection, steps: Sequence[Step] = STEPS) -> int:
    """Bring the database up to ``len(steps)``, each step in its own transaction with
    the version it reaches; refuse (``SchemaTooNew``, nothing written) a newer one."""
    latest = len(steps)
    while True:
        async with conn.transaction():
            # Two processes starting together: the second waits here, then sees the
            # version the first wrote.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            current = await schema_version(conn)
            if current > latest:
                raise SchemaTooNew(current, latest)
            if current == latest:
                return current
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS bridge_schema (version INTEGER NOT NULL)"
            )
            await conn.execute(
                "INSERT INTO bridge_schema (version) SELECT 0"
                " WHERE NOT EXISTS (SELECT 1 FROM bridge_schema)"
            )
            for sql in steps[current].postgres:
                await conn.execute(sql)
            await conn.execute("UPDATE bridge_schema SET version = $1", current + 1)


def _unavailable(url: str, exc: BaseException) -> DatabaseUnavailable:
    message = str(exc).replace(password_of(url) or "\0", "***")
    return DatabaseUnavailable(f"cannot open database {masked(url)}: {message}")


_CONNECT_ERRORS = (OSError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def probe(url: str) -> int:
    """Connect once and read the schema version, writing nothing (``check``); raises
    ``DatabaseUnavailable`` or ``SchemaTooNew``."""
    try:
        conn = await asyncpg.connect(url)
    except _CONNECT_ERRORS as exc:
        raise _unavailable(url, exc) from None
    try:
        version = await schema_version(conn)
    finally:
        await conn.close()
    if version > len(STEPS):
        raise SchemaTooNew(version, len(STEPS))
    return version


async def _nothing_to_reset(conn: asyncpg.Connection) -> None:
    """The store keeps no session state (no LISTEN, session locks, cursors or SET), so
    the pool's default reset query on every release would be a wasted round trip per
    call; asyncpg still rolls back a transaction left open."""


async def open_postgres(url: str) -> PostgresStore:
    """Connect a pool to ``url`` and bring the schema up to date. Errors name the
    database without its password."""
    try:
        pool = await asyncpg.create_pool(
            url, min_size=POOL_MIN, max_size=POOL_MAX, reset=_nothing_to_reset
        )
    except _CONNECT_ERRORS as exc:
        # from None: the original exception may quote the URL, password included.
        raise _unavailable(url, exc) from None
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
    except BaseException:
        await pool.close()
        raise
    return PostgresStore(pool)


# mypy holds the implementation to the core's interface here (tests are not type-checked).
_IMPLEMENTS: type[Store] = PostgresStore
