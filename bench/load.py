"""The bridge alone under load: many answers streaming at once through one or two bridge
processes, on SQLite or PostgreSQL.

This process runs the stand-ins: Open WebUI 0.12.x (``bench.owui_standin``: HTTP and
Socket.IO, answers streamed at ``--rate`` tokens a second each) and the local Slack
and Discord servers of ``tests/fakes``. The bridge runs in a child process
(``bench.load_bridge``: ``open_runtime`` with the Slack adapter in Socket Mode and
the Discord adapter, as ``owui-bridge run`` has them), so its CPU time, RSS and loop
lag are the bridge's alone. Half the questions are Slack mentions (each in its own
channel), half Discord mentions (each opens its own thread), all delivered at once.

``--database postgres`` runs the bridge on a PostgreSQL started from the machine's
binaries as the tests start it (``tests/harness/postgres.py``), a fresh database each
run. ``--replicas 2`` runs two bridge processes on that one database (PostgreSQL only;
``BRIDGE_REPLICAS=2``, so each takes half of the platforms' limits). Slack sends each
event to ONE of an app's Socket Mode connections: the fake takes turns over them
(``spread_events``). Discord sends a shard's events to every session holding it: both
replicas hold the one shard and the delivery claim decides which answers. Comma lists
run each combination (SQLite with two replicas is skipped). With two replicas, CPU is
the sum over both, RSS the larger peak (and the sum), and each replica's turns are
counted; an answer "whole" appeared once, complete, in its thread; "Open WebUI answers
started" counts completions asked for (a turn run twice would ask twice).

Per run it measures, over the window from the first question to the bridge idle:
  - bridge CPU seconds per 1,000 tokens delivered (tokens of answers that arrived
    whole on the platform);
  - bridge RSS peak (VmHWM);
  - event-loop lag p99 (a 10 ms ticker in the bridge's loop: how late it wakes);
  - time to first text p50/p95, from a question's delivery to the first platform
    call carrying text in its thread, as the fake platform saw it;
  - platform calls per answer (every Web API / REST call in the window).
Each concurrency runs ``--repeats`` times, a fresh bridge and fresh stand-ins each
time; cells show the median and, in brackets, the lowest and highest run.

The fakes enforce no rate limits by default (``--limits relaxed``; ``realistic``:
Slack's tiers and Discord's per-route and global 50/s); the bridge's own Slack budget
(Slack's published tiers, per workspace) applies either way, so most Slack answers at high
concurrency arrive in one post at the end: see the per-platform rows.

Usage: .venv/bin/python -m bench.load [--concurrency 50,200,500] [--repeats 2]
           [--tokens 200] [--rate 20] [--platforms slack,discord] [--limits relaxed] [--profile DIR]
           [--database sqlite|postgres|sqlite,postgres] [--replicas 1|2|1,2]
e.g.   .venv/bin/python -m bench.load --concurrency 50 --repeats 3 \
           --database sqlite,postgres --replicas 1,2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from adapters.slack.app import SCOPES
from bench.load_bridge import cpu_seconds
from bench.owui_standin import MODEL, StandIn, bench_jwt
from tests.fakes import discord_server, slack_server
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.slack_server import FakeSlack
from tests.harness.postgres import PostgresServer, find_binaries

SLACK_TEXT_CALLS = ("chat.postMessage", "chat.startStream", "chat.appendStream", "chat.update")
DISCORD_POST = "POST /channels/{channel_id}/messages"
USERS = 10  # distinct askers per platform (each costs one look-up on Slack)
DISCORD_CHANNELS = 10


@dataclass(frozen=True)
class Setup:
    database: str  # "sqlite" or "postgres"
    replicas: int

    def __str__(self) -> str:
        name = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[self.database]
        return f"{name} x{self.replicas}"


@dataclass
class Run:
    concurrency: int
    cpu: float
    wall: float
    rss_peak_mb: float
    lag_ms: list[float]
    tokens: int
    complete: int
    first_text_ms: dict[str, list[float]]  # platform -> per answer
    calls: dict[str, Counter[str]]  # platform -> method/route -> count
    answers: dict[str, int]  # platform -> questions asked
    generator_cpu: float
    stream_seconds: list[float]  # per answer: completion request to last token (stand-in)
    behind_ms: list[float]  # per answer: model's last token to the last platform call
    openwebui_requests: int
    rss_sum_mb: float = 0.0
    turns: list[int] = field(default_factory=list)  # per replica: turns it ended
    taken_over: int = 0
    answers_started: int = 0
    unknown_routes: Counter[str] = field(default_factory=Counter)

    @property
    def cpu_per_1k_tokens(self) -> float:
        return self.cpu / max(self.tokens, 1) * 1000

    def first_text(self, q: float, where: str | None = None) -> float:
        values = [v for p, vs in self.first_text_ms.items() if where in (None, p) for v in vs]
        return percentile(values, q)

    def calls_per_answer(self, where: str | None = None) -> float:
        platforms = [p for p in self.answers if where in (None, p)]
        total = sum(sum(self.calls[p].values()) for p in platforms)
        asked = sum(self.answers[p] for p in platforms)
        return total / max(asked, 1)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def same_text(shown: str, expected: str) -> bool:
    return shown.split() == expected.split()


class Bridge:
    """The child process running the bridge; one JSON line per request."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, config: dict[str, Any], log: Path) -> Bridge:
        stderr = log.open("ab")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.load_bridge",
            json.dumps(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            limit=64 * 1024 * 1024,
        )
        stderr.close()
        bridge = cls(proc)
        ready = await asyncio.wait_for(bridge._read(), 60)
        if not ready.get("ready"):
            raise RuntimeError(f"bridge did not start: {ready}")
        return bridge

    async def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"bridge process ended (code {await self.proc.wait()})")
        value: dict[str, Any] = json.loads(line)
        return value

    async def ask(self, command: str) -> dict[str, Any]:
        self.send(command)
        return await self._read()

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")

    async def close(self) -> None:
        if self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def fresh_database(postgres: PostgresServer | None, database: str) -> str | None:
    """A new empty PostgreSQL database (None: each bridge keeps its own SQLite file)."""
    if database == "sqlite":
        return None
    assert postgres is not None
    name = f"bench_{time.time_ns()}"
    conn = await asyncpg.connect(postgres.url())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return postgres.url(name)


async def run_once(
    concurrency: int,
    args: argparse.Namespace,
    number: int,
    setup: Setup = Setup("sqlite", 1),
    postgres: PostgresServer | None = None,
) -> Run:
    platforms = [p for p in args.platforms.split(",") if p]
    share = {p: concurrency // len(platforms) for p in platforms}
    share[platforms[0]] += concurrency - sum(share.values())
    async with (
        StandIn(tokens=args.tokens, rate=args.rate) as owui,
        FakeSlack() as slack,
        FakeDiscord() as discord,
    ):
        slack.scopes = list(SCOPES)
        slack.spread_events = True  # each event to one of the replicas' connections
        # relaxed: no 429s from either fake; realistic: Slack's tiers and Discord's limits.
        slack.enforce_tiers = args.limits == "realistic"
        discord.enforce_rate_limits = args.limits == "realistic"
        slack_users = [f"U{n:04d}" for n in range(USERS)]
        for n, user in enumerate(slack_users):
            slack.add_user(user, f"Person {n}")
        guild = discord.add_guild("Bench")
        channels = [discord.add_channel(guild, f"help-{n}") for n in range(DISCORD_CHANNELS)]
        discord_users = []
        for n in range(USERS):
            user = discord.add_user(name=f"person{n}", global_name=f"Person {n}")
            discord.add_member(guild, user)
            discord_users.append(user)
        config: dict[str, Any] = {
            "openwebui_url": owui.url,
            "openwebui_token": bench_jwt(),
            "model": MODEL,
            "max_concurrent_turns": concurrency,
            "update_interval": args.update_interval,
            "database": await fresh_database(postgres, setup.database),
            "replicas": setup.replicas,
        }
        if "slack" in platforms:
            config["slack_api_url"] = slack.api_url
        if "discord" in platforms:
            config |= {
                "discord_api_url": discord.api_url,
                "discord_gateway_url": discord.gateway_url,
            }
        bridges: list[Bridge] = []
        try:
            # One after another: the first applies the migrations.
            for replica in range(setup.replicas):
                if args.profile:
                    config["profile"] = str(
                        Path(args.profile) / f"bridge-{concurrency}-{number}-{replica}.prof"
                    )
                bridges.append(await Bridge.start(config, Path(args.log)))
            if "slack" in platforms:
                await slack.wait_for(
                    lambda: len(slack._open_sockets()) >= setup.replicas,
                    timeout=30,
                    what="a Socket Mode connection per replica",
                )
            if "discord" in platforms:
                await discord.wait_for_session(setup.replicas, timeout=30)
            await asyncio.sleep(0.5)  # the Discord client is ready a moment after READY
            calls_before = {"slack": len(slack.calls), "discord": len(discord.calls)}
            requests_before = sum(owui.requests.values())
            generator0 = cpu_seconds()
            for bridge in bridges:
                bridge.send("mark")
            sent_at: dict[str, dict[str, float]] = {"slack": {}, "discord": {}}
            deliveries = []
            for n in range(share.get("slack", 0)):
                channel = f"C{n:04d}"
                text = f"<@{slack_server.BOT_USER_ID}> bench question q{n:04d}"
                _ts, message, mention = slack.user_says(channel, slack_users[n % USERS], text)
                assert mention is not None
                sent_at["slack"][channel] = time.monotonic()
                deliveries.append(slack.send_event(message, timeout=60))
                deliveries.append(slack.send_event(mention, timeout=60))
            for n in range(share.get("discord", 0)):
                text = f"<@{discord_server.BOT_USER_ID}> bench question d{n:04d}"
                sent = time.monotonic()
                said = discord.user_says(
                    channels[n % DISCORD_CHANNELS], discord_users[n % USERS], text
                )
                sent_at["discord"][said.id] = sent
            await asyncio.gather(*deliveries)
            deadline = time.monotonic() + args.tokens / args.rate * 6 + 120
            while True:
                await asyncio.sleep(0.25)
                if owui.answers_finished >= concurrency and all(
                    [(await bridge.ask("idle"))["idle"] for bridge in bridges]
                ):
                    break
                if time.monotonic() > deadline:
                    print(
                        f"  timed out: {owui.answers_finished}/{concurrency} answers written",
                        file=sys.stderr,
                    )
                    break
            ended = [await bridge.ask("stop") for bridge in bridges]
            generator_cpu = cpu_seconds() - generator0
        finally:
            for bridge in bridges:
                await bridge.close()
        first: dict[str, list[float]] = {p: [] for p in platforms}
        calls: dict[str, Counter[str]] = {p: Counter() for p in platforms}
        complete = 0
        tokens = 0
        behind: list[float] = []
        last: dict[str, float] = {}
        per_answer = args.tokens
        if "slack" in platforms:
            firsts: dict[str, float] = {}
            for call in slack.calls[calls_before["slack"] :]:
                calls["slack"][call.method] += 1
                channel = str(call.params.get("channel") or "")
                last[channel] = call.at
                if call.method in SLACK_TEXT_CALLS and channel not in firsts:
                    shown = str(call.params.get("markdown_text") or call.params.get("text") or "")
                    if shown.strip() and not shown.startswith(":warning:"):
                        firsts[channel] = call.at
            for n, (channel, at) in enumerate(sent_at["slack"].items()):
                if f"q{n:04d}" in owui.finished_at and channel in last:
                    behind.append((last[channel] - owui.finished_at[f"q{n:04d}"]) * 1000)
                if channel in firsts:
                    first["slack"].append((firsts[channel] - at) * 1000)
                replies = [
                    m.text for m in slack.channel_view(channel) if m.bot_id == slack_server.BOT_ID
                ]
                if replies and _whole(owui, "\n\n".join(replies)):
                    complete += 1
                    tokens += per_answer
        if "discord" in platforms:
            dfirsts: dict[str, float] = {}
            for dcall in discord.calls[calls_before["discord"] :]:
                calls["discord"][dcall.key] += 1
                if dcall.path.startswith("/channels/"):
                    last[dcall.path.split("/")[2]] = dcall.at
                if dcall.key == DISCORD_POST and isinstance(dcall.body, dict):
                    thread = dcall.path.split("/")[2]
                    if str(dcall.body.get("content") or "").strip() and thread not in dfirsts:
                        dfirsts[thread] = dcall.at
            for n, (thread, at) in enumerate(sent_at["discord"].items()):
                if f"d{n:04d}" in owui.finished_at and thread in last:
                    behind.append((last[thread] - owui.finished_at[f"d{n:04d}"]) * 1000)
                if thread in dfirsts:
                    first["discord"].append((dfirsts[thread] - at) * 1000)
                shown = "\n\n".join(m.content for m in discord.bot_messages(thread))
                if shown and _whole(owui, shown):
                    complete += 1
                    tokens += per_answer
        return Run(
            concurrency=concurrency,
            cpu=sum(r["cpu"] for r in ended),
            wall=max(r["wall"] for r in ended),
            rss_peak_mb=max(r["rss_peak_mb"] for r in ended),
            rss_sum_mb=sum(r["rss_peak_mb"] for r in ended),
            turns=[r["turns"] for r in ended],
            taken_over=sum(r["taken_over"] for r in ended),
            answers_started=owui.answers_started,
            lag_ms=[v for r in ended for v in r["lag_ms"]],
            tokens=tokens,
            complete=complete,
            first_text_ms=first,
            calls=calls,
            answers={p: share[p] for p in platforms},
            generator_cpu=generator_cpu,
            stream_seconds=list(owui.durations),
            behind_ms=behind,
            openwebui_requests=sum(owui.requests.values()) - requests_before,
            unknown_routes=owui.unknown,
        )


def _whole(owui: StandIn, shown: str) -> bool:
    """Whether ``shown`` is one of the answers the stand-in wrote, whole."""
    words = shown.split()
    return any(words == text.split() for text in owui.finished_texts.values())


def cell(values: list[float], digits: int) -> str:
    middle = statistics.median(values)
    if len(values) == 1:
        return f"{middle:.{digits}f}"
    return f"{middle:.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


ROWS: list[tuple[str, int, Any]] = [
    ("CPU s per 1,000 tokens (= ms/token)", 3, lambda r: r.cpu_per_1k_tokens),
    ("RSS peak, MB (the larger replica)", 0, lambda r: r.rss_peak_mb),
    ("RSS peak, all replicas, MB", 0, lambda r: r.rss_sum_mb),
    ("loop lag p99, ms", 1, lambda r: percentile(r.lag_ms, 0.99)),
    ("loop lag max, ms", 0, lambda r: max(r.lag_ms or [0.0])),
    ("first text p50, ms", 0, lambda r: r.first_text(0.5)),
    ("first text p95, ms", 0, lambda r: r.first_text(0.95)),
    (
        "  Discord p50 / p95, ms",
        -1,
        lambda r: (r.first_text(0.5, "discord"), r.first_text(0.95, "discord")),
    ),
    (
        "  Slack p50 / p95, ms",
        -1,
        lambda r: (r.first_text(0.5, "slack"), r.first_text(0.95, "slack")),
    ),
    ("last text after the model's last token, p50, ms", 0, lambda r: percentile(r.behind_ms, 0.5)),
    ("last text after the model's last token, p95, ms", 0, lambda r: percentile(r.behind_ms, 0.95)),
    ("platform calls per answer", 1, lambda r: r.calls_per_answer()),
    ("  Discord", 1, lambda r: r.calls_per_answer("discord")),
    ("  Slack", 1, lambda r: r.calls_per_answer("slack")),
    ("Open WebUI requests per answer", 1, lambda r: r.openwebui_requests / r.concurrency),
    ("answers whole on the platform, once", -2, lambda r: (r.complete, r.concurrency)),
    ("Open WebUI answers started", -2, lambda r: (r.answers_started, r.concurrency)),
    ("turns ended per replica", -3, lambda r: "+".join(str(t) for t in r.turns)),
    ("turns taken over", -3, lambda r: str(r.taken_over)),
    ("answer streamed in, s, p50 (stand-in)", 1, lambda r: percentile(r.stream_seconds, 0.5)),
    ("wall time of the run, s", 1, lambda r: r.wall),
    ("tokens/s delivered (all answers)", 0, lambda r: r.tokens / max(r.wall, 1e-9)),
    ("generator CPU (stand-ins), s", 1, lambda r: r.generator_cpu),
]


Column = tuple[Setup, int]


def table(runs: dict[Column, list[Run]]) -> str:
    levels = list(runs)
    several = len({setup for setup, _ in levels}) > 1
    header = [
        "",
        *[f"{n} at once" + (f", {setup}" if several else "") for setup, n in levels],
    ]
    lines = []
    for name, digits, get in ROWS:
        if name.startswith("  ") and not all(
            any((p in name.lower()) for p in r.answers) for rs in runs.values() for r in rs
        ):
            continue
        row = [name]
        for n in levels:
            values = [get(r) for r in runs[n]]
            if digits == -1:
                row.append(" / ".join(cell([v[i] for v in values], 0) for i in (0, 1)))
            elif digits == -2:
                row.append(", ".join(f"{a}/{b}" for a, b in values))
            elif digits == -3:
                row.append(", ".join(values))
            else:
                row.append(cell(values, digits))
        lines.append(row)
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    out = [fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt(r) for r in lines]
    return "\n".join(out)


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return (
        f"machine: nproc {os.cpu_count()}, {model or platform.machine()}, "
        f"Python {platform.python_version()}, load average before {load[0]:.2f}"
    )


async def main(argv: list[str] | None = None) -> dict[Column, list[Run]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", default="50,200,500")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=200, help="tokens per answer")
    parser.add_argument("--rate", type=float, default=20.0, help="tokens/s per answer")
    parser.add_argument("--platforms", default="slack,discord")
    parser.add_argument("--update-interval", type=float, default=1.0)
    parser.add_argument(
        "--limits",
        choices=("relaxed", "realistic"),
        default="relaxed",
        help="platform rate limits in the fakes (realistic: Slack tiers, Discord 50/s)",
    )
    parser.add_argument("--profile", help="write a cProfile of each run's bridge here")
    parser.add_argument("--log", default="/tmp/bench-load-bridge.log", help="bridge stderr")
    parser.add_argument("--database", default="sqlite", help="sqlite, postgres or both")
    parser.add_argument("--replicas", default="1", help="bridge processes: 1, 2 or 1,2")
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.concurrency.split(",")]
    setups = [
        Setup(database, int(replicas))
        for database in args.database.split(",")
        for replicas in args.replicas.split(",")
        if database == "postgres" or replicas == "1"
    ]
    if not setups or any(s.database not in ("sqlite", "postgres") for s in setups):
        parser.error("--database sqlite|postgres; two replicas need postgres")
    postgres: PostgresServer | None = None
    if any(s.database == "postgres" for s in setups):
        bindir = find_binaries()
        if bindir is None:
            parser.error("PostgreSQL (initdb, pg_ctl) is not installed")
        postgres = await asyncio.to_thread(PostgresServer.start, bindir)
    try:
        return await run_all(args, levels, setups, postgres)
    finally:
        if postgres is not None:
            await asyncio.to_thread(postgres.stop)


async def run_all(
    args: argparse.Namespace,
    levels: list[int],
    setups: list[Setup],
    postgres: PostgresServer | None,
) -> dict[Column, list[Run]]:
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    print(machine())
    print(
        f"each answer: {args.tokens} tokens at {args.rate:g} tokens/s; platforms: "
        f"{args.platforms}; update interval {args.update_interval:g} s; fakes' rate limits "
        f"{args.limits}; the bridge's own Slack tier budget on; per-person rate limit off"
    )
    runs: dict[Column, list[Run]] = {(s, n): [] for s in setups for n in levels}
    for repeat in range(args.repeats):
        for setup, n in runs:
            run = await run_once(n, args, repeat, setup, postgres)
            runs[setup, n].append(run)
            print(
                f"  run {repeat + 1}, {n} at once, {setup}: {run.wall:.1f} s, bridge CPU "
                f"{run.cpu:.1f} s, {run.complete}/{n} whole, turns "
                f"{'+'.join(map(str, run.turns))}, "
                f"lag p99 {percentile(run.lag_ms, 0.99):.1f} ms",
                flush=True,
            )
            if run.unknown_routes:
                print(f"  stand-in had no route for: {dict(run.unknown_routes)}")
    print(table(runs))
    return runs


if __name__ == "__main__":
    asyncio.run(main())
