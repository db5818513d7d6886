"""Both back ends behind one fixture: every storage test marked for it runs on an SQLite
file and on a database of its own in a real PostgreSQL."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from storage import open_store


@dataclass
class Db:
    """One back end's database: open stores on it, and read or change it from outside
    the store (``?`` placeholders on both), as a second process would."""

    kind: str  # "sqlite" or "postgres"
    target: str | Path  # the file, or the URL

    async def open(self) -> Any:
        store = await open_store(self.target)
        # A URL taken for a file name would pass every test that reads through the store.
        assert (
            type(store).__name__
            == {"sqlite": "SqliteStore", "postgres": "PostgresStore"}[self.kind]
        )
        return store

    async def raw(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.target)
            try:
                conn.execute("PRAGMA foreign_keys = ON")
                rows = list(conn.execute(sql, params).fetchall())
                conn.commit()
                return rows
            finally:
                conn.close()
        numbered = iter(range(1, 1000))
        sql = re.sub(r"\?", lambda _: f"${next(numbered)}", sql)
        pg = await asyncpg.connect(str(self.target))
        try:
            return [tuple(r) for r in await pg.fetch(sql, *params)]
        finally:
            await pg.close()


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Db:
    if request.param == "sqlite":
        return Db("sqlite", tmp_path / "nested" / "dir" / "bridge.db")
    return Db("postgres", request.getfixturevalue("postgres_url"))
