"""``owui-bridge check`` on PostgreSQL: one line naming the database, never its password."""

from __future__ import annotations

import asyncpg

from adapters.check import check_database
from bridge.config import load_settings
from storage import open_store
from storage.migrations import LATEST_VERSION
from tests.harness.postgres import PostgresServer

PASSWORD = "Pg-Pass-w0rd-never-shown"


def with_password(url: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")


async def lines_for(url: str) -> list[tuple[str, bool, str]]:
    lines: list[tuple[str, bool, str]] = []
    await check_database(load_settings(bridge_database=url), lambda *line: lines.append(line))
    assert all(PASSWORD not in detail for _, _, detail in lines)
    return lines


async def test_a_reachable_database_is_ok_and_names_its_schema(postgres_url: str) -> None:
    url = with_password(postgres_url)
    [(name, passed, detail)] = await lines_for(url)
    assert (name, passed) == ("database", True) and "empty" in detail and ":***@" in detail
    await (await open_store(postgres_url)).close()
    [(_, passed, detail)] = await lines_for(url)
    assert passed and f"schema {LATEST_VERSION} of {LATEST_VERSION}" in detail


async def test_an_unreachable_or_newer_database_fails(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    [(_, passed, detail)] = await lines_for(f"postgresql://bridge:{PASSWORD}@127.0.0.1:1/owui")
    assert not passed and "bridge:***@127.0.0.1:1/owui" in detail
    conn = await asyncpg.connect(postgres_url)
    await conn.execute("CREATE TABLE bridge_schema (version INTEGER NOT NULL)")
    await conn.execute("INSERT INTO bridge_schema VALUES ($1)", LATEST_VERSION + 1)
    await conn.close()
    [(_, passed, detail)] = await lines_for(with_password(postgres_url))
    assert not passed and "newer than this code supports" in detail


async def test_an_sqlite_file_is_not_checked(tmp_path: object) -> None:
    assert await lines_for(f"{tmp_path}/bridge.db") == []
