"""Database round trips per answered question, SQLite vs PostgreSQL, and what the
lease keeper costs.

Runs N questions one after another in one thread through the core against a real
Open WebUI, once per back end, and counts every statement the store sends (BEGIN
and COMMIT included) by wrapping the drivers' calls. PostgreSQL is started from
the machine's binaries, as the tests do.

Then the lease keeper (``ThreadQueue.tend``, which ``keep`` runs every
``LeaseTimes.every`` seconds: renew this process's leases, look for dead owners on
this machine, look for open conversations nobody holds on each platform) is run a
few rounds with one platform, idle (no turn held) and busy (one answer under way),
counting only its own statements; per minute is that times 60 / ``every``.

Usage:  .venv/bin/python -m bench.db_trips [--turns 10] [--state FILE] [--version 0.12.4]
e.g.    .venv/bin/python -m bench.db_trips --state /work/main/.test-artifacts/all.json
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg

from adapters.runtime import open_runtime
from bench.servers import bench_servers
from bridge.leases import LeaseTimes
from tests.contract.bridge_fixtures import event, settings_for, submit
from tests.harness.openwebui import RunningOpenWebUI
from tests.harness.postgres import PostgresServer, find_binaries

QUESTION = "benchmark question {n} [[words=20]] [[first=0]]"
SLOW = "benchmark question under way [[words=60]] [[delay=0.1]]"  # about 6 s
ROUNDS = 5  # keeper rounds measured, idle and busy
TRIPS: Counter[str] = Counter()
KEEPER: ContextVar[bool] = ContextVar("keeper", default=False)
KEEPER_TRIPS: Counter[str] = Counter()


@contextmanager
def counting() -> Iterator[None]:
    """Count each driver call that reaches the database, per back end."""
    patched: list[tuple[Any, str, Callable[..., Any]]] = []

    def wrap(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            TRIPS[label] += 1
            if KEEPER.get():  # a statement of the keeper's task, not the answer's
                KEEPER_TRIPS[label] += 1
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


async def keeper_rounds(runtime: Any, label: str) -> float:
    """Statements per keeper round (median of ``ROUNDS``), counted in its own task."""
    queue = runtime.bridge._queue  # the keeper's one round, without its 2 s sleep

    async def one() -> int:
        KEEPER.set(True)
        before = KEEPER_TRIPS[label]
        await queue.tend(["test"], lambda conversation, turn: None)
        return KEEPER_TRIPS[label] - before

    return statistics.median([await asyncio.create_task(one()) for _ in range(ROUNDS)])


async def measure(
    server: RunningOpenWebUI, database: str, label: str, turns: int
) -> tuple[list[int], float, float]:
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
            idle = await keeper_rounds(runtime, label)
            pending = await submit(runtime, event(SLOW, "db-trips-busy"))
            await asyncio.sleep(1.0)  # the answer is under way: its lease is held
            assert not runtime.bridge.idle
            busy = await keeper_rounds(runtime, label)
            assert not pending.done(), "the slow answer ended before the keeper was measured"
            assert (await pending).error is None
    return per_turn, idle, busy


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
    per_minute = 60 / LeaseTimes().every
    print("statements per answered question (one thread, one after another)")
    print("| back end | 1st turn | next, median | next, max |\n|---|---|---|---|")
    for label, (trips, _, _) in results.items():
        rest = trips[1:] or trips
        print(f"| {label} | {trips[0]} | {statistics.median(rest):g} | {max(rest)} |")
    print(
        f"lease keeper, one platform, every {LeaseTimes().every:g} s: statements per round "
        f"(per minute, per replica)"
    )
    print("| back end | idle | busy (one answer under way) |\n|---|---|---|")
    for label, (_, idle, busy) in results.items():
        print(
            f"| {label} | {idle:g} ({idle * per_minute:g}/min) "
            f"| {busy:g} ({busy * per_minute:g}/min) |"
        )


if __name__ == "__main__":
    asyncio.run(main())
