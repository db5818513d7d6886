"""Implementations of ``bridge.store.Store``: SQLite (a file) and PostgreSQL (a URL)."""

from __future__ import annotations

from pathlib import Path

from storage.migrations import SchemaTooNew
from storage.postgres import (
    DatabaseUnavailable,
    PostgresStore,
    is_postgres,
    masked,
    open_postgres,
)
from storage.sqlite import MEMORY, SqliteStore
from storage.sqlite import open_store as open_sqlite

__all__ = [
    "MEMORY",
    "DatabaseUnavailable",
    "PostgresStore",
    "SchemaTooNew",
    "SqliteStore",
    "describe",
    "open_store",
]


async def open_store(database: str | Path) -> SqliteStore | PostgresStore:
    """A ``postgresql://`` (or ``postgres://``) URL opens PostgreSQL; anything else is
    an SQLite file path (``":memory:"``: a private in-memory database)."""
    if is_postgres(str(database)):
        return await open_postgres(str(database))
    return await open_sqlite(database)


def describe(database: str | Path) -> str:
    """The database for people to read: a URL without its password."""
    return masked(str(database)) if is_postgres(str(database)) else f"SQLite file {database}"
