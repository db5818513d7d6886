"""Latency of Slack Web API calls with one shared HTTP session and with one per call.

Makes ``--calls`` ``chat.update`` calls, one after another, against the local
Slack-compatible server (tests/fakes), with the adapter's own client
(``adapters.slack.client.make_client``): once with the process's shared session
(keep-alive: one TCP connection), once without (slack_sdk then opens and closes a
session, so a connection, per call). Each variant runs ``--runs`` times, interleaved,
and prints the median and p95 per run and the spread across runs, so the machine's
noise shows beside the difference. On loopback a new connection costs a TCP
handshake only; to slack.com it also costs TLS, so the real saving is larger.

Usage: .venv/bin/python -m bench.slack_calls [--calls 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from adapters.slack.client import SlackHttp, make_client
from adapters.slack.settings import SlackSettings
from tests.fakes.slack_server import FakeSlack


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def run(fake: FakeSlack, calls: int, shared: bool) -> tuple[list[float], int]:
    """Seconds per call, and the TCP connections they used."""
    settings = SlackSettings(bot_token="xoxb-bench", api_url=fake.api_url)
    http = SlackHttp() if shared else None
    client = make_client(settings, http=http)
    before = fake.api_connections
    posted = await client.chat_postMessage(channel="C1", text="bench")
    ts = str(posted["ts"])
    took: list[float] = []
    try:
        for n in range(calls):
            started = time.perf_counter()
            await client.chat_update(channel="C1", ts=ts, text=f"edit {n}")
            took.append(time.perf_counter() - started)
    finally:
        if http is not None:
            await http.close()
    return took, fake.api_connections - before


async def main(calls: int, runs: int) -> None:
    medians: dict[str, list[float]] = {"shared session": [], "session per call": []}
    async with FakeSlack() as fake:
        for attempt in range(1, runs + 1):
            for name, shared in (("shared session", True), ("session per call", False)):
                took, connections = await run(fake, calls, shared)
                ms = [t * 1000 for t in took]
                medians[name].append(statistics.median(ms))
                print(
                    f"run {attempt} {name:>16}: median {statistics.median(ms):6.3f} ms,"
                    f" p95 {p95(ms):6.3f} ms, {len(ms)} chat.update calls,"
                    f" {connections} TCP connection(s) for them and 1 post"
                )
    print()
    for name, values in medians.items():
        print(
            f"{name:>16}: median of medians {statistics.median(values):6.3f} ms,"
            f" spread {min(values):6.3f} to {max(values):6.3f} ms over {len(values)} runs"
        )
    shared, fresh = (statistics.median(v) for v in medians.values())
    print(f"per call, one session saves {fresh - shared:6.3f} ms ({fresh / shared:.2f}x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.runs))
