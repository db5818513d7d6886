"""Database round trips per answered question, SQLite vs PostgreSQL.

Runs N questions one after another in one thread through the core against a real
Open WebUI, once per back end, and counts every statement the store sends (BEGIN
and COMMIT included) by wrapping the drivers' calls. PostgreSQL is started from
the machine's binaries, as the tests do.

Usage:  .venv/bin/python -m bench.db_trips [--turns 10] [--state FILE] [--version 0.12.4]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg

from adapters.runtime import open_runtime
from bench.servers import bench_servers
from tests.contract.bridge_fixtures import event, settings_for, submit
from tests.harness.openwebui import RunningOpenWebUI
from tests.harness.postgres import PostgresServer, find_binaries

QUESTION = "benchmark question {n} [[words=20]] [[first=0]]"
TRIPS: Counter[str] = Counter()


@contextmanager
def counting() -> Iterator[None]:
    """Count each driver call that reaches the database, per back end."""
    patched: list[tuple[Any, str, Callable[..., Any]]] = []

    def wrap(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            TRIPS[label] += 1
            return original(*args, **kwargs)

        patched.append((owner, name, original))
        setattr(owner, name, counted)

    wrap(aiosqlite.Connection, "execute", "sqlite")
    # asyncpg's transactions send BEGIN and COMMIT through Connection.execute too.
    for name in ("execute", "fetch", "fetchrow", "fetchval"):
        wrap(asyncpg.connection.Connection, name, "postgres")
    try:
        yield
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)


async def measure(server: RunningOpenWebUI, database: str, label: str, turns: int) -> list[int]:
    per_turn: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(server, Path(tmp) / "x.db", "events", bridge_database=database)
        async with open_runtime(settings) as runtime:
            for n in range(turns):
                before = TRIPS[label]
                pending = await submit(runtime, event(QUESTION.format(n=n), "db-trips"))
                result = await pending
                assert result.error is None, result
                per_turn.append(TRIPS[label] - before)
    return per_turn


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--state", type=Path)
    parser.add_argument("--version", default="0.12.4")
    args = parser.parse_args()
    bindir = find_binaries()
    if bindir is None:
        raise SystemExit("PostgreSQL (initdb, pg_ctl) is not installed")
    postgres = PostgresServer.start(bindir)
    try:
        with bench_servers(args.state, (args.version,)) as pool, counting():
            server = pool.get(args.version)
            with tempfile.TemporaryDirectory() as tmp:
                results = {
                    "sqlite": await measure(server, f"{tmp}/bench.db", "sqlite", args.turns),
                    "postgres": await measure(server, postgres.url(), "postgres", args.turns),
                }
    finally:
        postgres.stop()
    print(f"{'back end':<9} {'1st turn':>8} {'next, median':>12} {'next, max':>9}")
    for label, trips in results.items():
        rest = trips[1:] or trips
        print(f"{label:<9} {trips[0]:>8} {statistics.median(rest):>12} {max(rest):>9}")


if __name__ == "__main__":
    asyncio.run(main())
