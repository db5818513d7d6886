"""Recovery time: how long an answer waits when the replica writing it dies mid-answer.

Two bridge processes (``bench.load_bridge``, Slack in Socket Mode) share one PostgreSQL
started from the machine's binaries as the tests start it (a fresh database each run),
with the local stand-ins ``bench.load`` uses: Open WebUI (``bench.owui_standin``,
which keeps generating an answer whoever follows it) and the fake Slack. Replica A is
started alone and asked one question; once its answer shows in the thread, replica B
is started, and ``--kill-after`` seconds (plus up to ``--jitter`` at random, so the
signal falls anywhere in B's 2 s lease round) into the answer A is
  - ``kill``: SIGKILLed. B runs on the same machine, so it sees at its next lease round
    (every 2 s) that A's process is gone and takes the turn over at once;
  - ``stall``: SIGSTOPped. A's process still exists: B takes over only when A's lease
    (``BRIDGE_LEASE_SECONDS``, ``--leases``) has run out.
Measured from the signal: until B's first call carrying the answer's text in the thread
("first edit"), and until the thread shows the whole answer ("complete"; polled every
20 ms; the answer is made long enough to be under way when B takes over, so this is
mostly the model's time: the delay the death adds is the first edit, and how long
after the model's last token the thread is whole). Each run also checks that the
answer arrived whole exactly once and that Open WebUI was asked for it once (B follows
the answer under way, it does not ask again).
Cells: median [lowest-highest] over ``--runs``.

Usage: .venv/bin/python -m bench.recovery [--runs 3] [--modes kill,stall] [--leases 5,10]
           [--rate 10] [--kill-after 3] [--jitter 2] [--verbose]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.slack.app import SCOPES
from bench.load import SLACK_TEXT_CALLS, Bridge, fresh_database, machine
from bench.owui_standin import MODEL, StandIn, bench_jwt
from tests.fakes import slack_server
from tests.fakes.slack_server import FakeSlack
from tests.harness.postgres import PostgresServer, find_binaries

CHANNEL = "C0001"
POLL = 0.02  # seconds between looks at the thread
B_TOKEN = "xoxb-bench-b"


@dataclass
class Recovery:
    mode: str
    lease: float
    first_edit: float | None  # seconds from the signal to B's first text call
    complete: float | None  # seconds from the signal to the whole answer in the thread
    model_done: float | None  # seconds from the signal to the stand-in's last token
    once: bool  # the thread shows the answer whole, once
    asked: int  # answers Open WebUI was asked for

    @property
    def behind(self) -> float | None:
        """Seconds the whole answer showed after the model's last token."""
        if self.complete is None or self.model_done is None:
            return None
        return self.complete - self.model_done


def _shown(call: slack_server.Call) -> str:
    return str(call.params.get("markdown_text") or call.params.get("text") or "")


def _bot_text(slack: FakeSlack) -> str:
    views = slack.channel_view(CHANNEL)
    return "\n\n".join(m.text for m in views if m.bot_id == slack_server.BOT_ID)


async def run_once(
    mode: str, lease: float, args: argparse.Namespace, postgres: PostgresServer
) -> Recovery:
    # Long enough to be under way when B takes over: the lease, B's round, a margin.
    seconds = args.kill_after + args.jitter + lease + 2 + 12
    tokens = round(args.rate * seconds)
    async with StandIn(tokens=tokens, rate=args.rate) as owui, FakeSlack() as slack:
        slack.scopes = list(SCOPES)
        slack.add_user("U0001", "Person 1")
        config: dict[str, Any] = {
            "openwebui_url": owui.url,
            "openwebui_token": bench_jwt(),
            "model": MODEL,
            "max_concurrent_turns": 8,
            "update_interval": args.update_interval,
            "database": await fresh_database(postgres, "postgres"),
            "replicas": 2,
            "lease_seconds": lease,
            "slack_api_url": slack.api_url,
        }
        log = Path(args.log)
        # Each replica its own token: the fake records it, so B's calls are told apart.
        a = await Bridge.start(config | {"slack_bot_token": "xoxb-bench-a"}, log)
        bridges = [a]
        try:
            await slack.wait_for_socket(timeout=30)
            text = f"<@{slack_server.BOT_USER_ID}> bench question q0000"
            _ts, message, mention = slack.user_says(CHANNEL, "U0001", text)
            assert mention is not None
            await slack.send_event(message, timeout=30)
            await slack.send_event(mention, timeout=30)
            await slack.wait_for(
                lambda: any(
                    c.method in SLACK_TEXT_CALLS and _shown(c).strip() for c in slack.calls
                ),
                timeout=60,
                what="A's first text",
            )
            shown_at = time.monotonic()
            # B: the fake sends new events to the newest connection, but none come.
            bridges.append(await Bridge.start(config | {"slack_bot_token": B_TOKEN}, log))
            await slack.wait_for(
                lambda: len(slack._open_sockets()) >= 2, timeout=30, what="B's connection"
            )
            # A random extra wait: the signal falls anywhere in B's 2 s lease round.
            wait = args.kill_after + random.uniform(0, args.jitter)
            await asyncio.sleep(max(0.0, shown_at + wait - time.monotonic()))
            assert owui.answers_finished == 0, "the answer ended before the replica died"
            killed = time.monotonic()
            os.kill(a.proc.pid, signal.SIGKILL if mode == "kill" else signal.SIGSTOP)
            first_edit: float | None = None
            complete: float | None = None
            deadline = killed + lease + seconds + 60
            seen = len(slack.calls)
            while time.monotonic() < deadline and complete is None:
                await asyncio.sleep(POLL)
                if first_edit is None:
                    for call in slack.calls[seen:]:
                        if (
                            call.params.get("token") == B_TOKEN
                            and call.params.get("channel") == CHANNEL
                            and call.method in SLACK_TEXT_CALLS
                            and _shown(call).strip()
                        ):
                            first_edit = call.at - killed
                            break
                    seen = len(slack.calls)
                texts = list(owui.finished_texts.values())
                if texts and _bot_text(slack).split() == texts[0].split():
                    complete = time.monotonic() - killed
            done_at = next(iter(owui.finished_at.values()), None)
            texts = list(owui.finished_texts.values())
            once = len(texts) == 1 and _bot_text(slack).split() == texts[0].split()
            if args.verbose:
                for call in slack.calls:
                    if call.params.get("channel") == CHANNEL:
                        who = "B" if call.params.get("token") == B_TOKEN else "A"
                        print(f"    {call.at - killed:+7.2f} {who} {call.method}")
            await bridges[1].ask("stop")
        finally:
            if mode == "stall" and a.proc.returncode is None:
                os.kill(a.proc.pid, signal.SIGKILL)
            for bridge in reversed(bridges):
                await bridge.close()
        return Recovery(
            mode=mode,
            lease=lease,
            first_edit=first_edit,
            complete=complete,
            model_done=None if done_at is None else done_at - killed,
            once=once,
            asked=owui.answers_started,
        )


def cell(values: list[float | None], digits: int = 2) -> str:
    got = [v for v in values if v is not None]
    missing = len(values) - len(got)
    if not got:
        return "none"
    text = f"{statistics.median(got):.{digits}f}"
    if len(got) > 1:
        text += f" [{min(got):.{digits}f}-{max(got):.{digits}f}]"
    return text + (f" ({missing} never)" if missing else "")


def table(results: dict[tuple[str, float], list[Recovery]]) -> str:
    header = (
        "| replica A | lease, s | runs | to B's first edit, s | to the whole answer, s "
        "| model's last token, s | whole after the last token, s | whole, once "
        "| Open WebUI asked |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    for (mode, lease), runs in results.items():
        what = "SIGKILL (same machine)" if mode == "kill" else "SIGSTOP (stalled)"
        lines.append(
            f"| {what} | {lease:g} | {len(runs)} | {cell([r.first_edit for r in runs])} "
            f"| {cell([r.complete for r in runs])} | {cell([r.model_done for r in runs])} "
            f"| {cell([r.behind for r in runs])} "
            f"| {sum(r.once for r in runs)}/{len(runs)} "
            f"| {', '.join(str(r.asked) for r in runs)} |"
        )
    return "\n".join(lines)


async def main(argv: list[str] | None = None) -> dict[tuple[str, float], list[Recovery]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", default="kill,stall")
    parser.add_argument("--leases", default="5,10", help="BRIDGE_LEASE_SECONDS values")
    parser.add_argument("--rate", type=float, default=10.0, help="tokens/s of the answer")
    parser.add_argument("--kill-after", type=float, default=3.0, help="s after its first text")
    parser.add_argument("--jitter", type=float, default=2.0, help="s added at random to that")
    parser.add_argument("--update-interval", type=float, default=1.0)
    parser.add_argument("--verbose", action="store_true", help="print the thread's calls")
    parser.add_argument("--log", default="/tmp/bench-recovery-bridge.log", help="bridges' stderr")
    args = parser.parse_args(argv)
    bindir = find_binaries()
    if bindir is None:
        parser.error("PostgreSQL (initdb, pg_ctl) is not installed")
    print(machine())
    print(
        f"one answer at {args.rate:g} tokens/s, replica A signalled {args.kill_after:g} s "
        f"(+ 0-{args.jitter:g} s at random) after its first text; Slack update interval "
        f"{args.update_interval:g} s"
    )
    leases = [float(x) for x in args.leases.split(",")]
    # A killed replica is noticed whatever its lease: measured at the first lease only.
    cases = [
        (mode, lease)
        for mode in args.modes.split(",")
        for lease in (leases if mode == "stall" else leases[:1])
    ]
    postgres = await asyncio.to_thread(PostgresServer.start, bindir)
    results: dict[tuple[str, float], list[Recovery]] = {case: [] for case in cases}
    try:
        for number in range(args.runs):
            for mode, lease in cases:
                got = await run_once(mode, lease, args, postgres)
                results[mode, lease].append(got)
                print(
                    f"  run {number + 1}, {mode}, lease {lease:g} s: first edit "
                    f"{cell([got.first_edit])} s, whole {cell([got.complete])} s, "
                    f"once {got.once}, Open WebUI asked {got.asked}",
                    flush=True,
                )
    finally:
        await asyncio.to_thread(postgres.stop)
    print(table(results))
    return results


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
