"""Slack Web API calls per answer, calls per minute, and time to first visible text.

Runs the real Slack adapter (Socket Mode) against the local Slack-compatible
server and a real Open WebUI, for ~500-word answers streamed at ~30 words a
second (the fake model's first-token delay is 0, so nothing is subtracted):

- one answer at a time (``--turns``): median time from event delivery to the
  first bot text in the thread, and calls per answer by method;
- ``--concurrent`` answers at once in as many threads, with the local server
  enforcing Slack's rate tiers: calls per answer, calls per minute across the
  workspace, 429s received, and whether every answer arrived complete.

Both with native streaming and with the post+update fallback.

Usage: .venv/bin/python -m bench.slack [--turns 20] [--concurrent 8] [--interval 1.0]
                                       [--state .test-artifacts/servers.json]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import statistics
import tempfile
import time
from pathlib import Path

from bench.servers import bench_servers
from tests.e2e.test_slack import ALICE, CHANNEL, slack_bridge
from tests.fakes.slack_server import BOT_USER_ID
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import ServerPool

# ~30 words a second, as a model streams; first-token delay 0.
QUESTION = f"<@{BOT_USER_ID}" + "> bench {n} [[words=500]] [[delay=0.1]] [[first=0]]"
LOOKUPS = ("users.info", "auth.test", "apps.connections.open")


def per_method(calls: collections.Counter[str], answers: int) -> dict[str, float]:
    return {m: round(c / answers, 1) for m, c in sorted(calls.items()) if m not in LOOKUPS}


async def sequential(
    pool: ServerPool, version: str, streaming: bool, turns: int, interval: float
) -> None:
    firsts: list[float] = []
    calls: collections.Counter[str] = collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        async with slack_bridge(
            pool.get(version), Path(tmp), "socket", update_interval=interval
        ) as h:
            h.fake.streaming_enabled = streaming
            for n in range(turns):
                before = len(h.fake.calls)
                ts, _message, mention = h.fake.user_says(CHANNEL, ALICE, QUESTION.format(n=n))
                sent = time.monotonic()
                assert mention is not None
                await h.fake.send_event(mention)
                await h.fake.wait_for(
                    lambda ts=ts: bool(h.fake.bot_replies(CHANNEL, ts)), timeout=60
                )
                firsts.append(time.monotonic() - sent)
                await h.answers(CHANNEL, ts, 1)
                for call in h.fake.calls[before:]:
                    calls[call.method] += 1
    counts = per_method(calls, turns)
    print(
        f"{version} {'native' if streaming else 'fallback'} x1: "
        f"first text median {statistics.median(firsts) * 1000:.0f} ms "
        f"(min {min(firsts) * 1000:.0f}, max {max(firsts) * 1000:.0f}); "
        f"calls/answer {sum(counts.values()):.1f} {counts}"
    )


async def concurrent(
    pool: ServerPool, version: str, streaming: bool, answers: int, interval: float
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with slack_bridge(
            pool.get(version), Path(tmp), "socket", update_interval=interval
        ) as h:
            h.fake.streaming_enabled = streaming
            h.fake.enforce_tiers = True
            asked = []
            for n in range(answers):
                text = QUESTION.format(n=n)
                ts, _message, mention = h.fake.user_says(f"C{n:03d}", ALICE, text)
                assert mention is not None
                asked.append((f"C{n:03d}", ts, text, mention))
            before = len(h.fake.calls)
            started = time.monotonic()
            await asyncio.gather(*(h.fake.send_event(mention) for *_, mention in asked))
            for channel, ts, *_ in asked:
                await h.answers(channel, ts, 1, timeout=600)
            elapsed = time.monotonic() - started
            calls = collections.Counter(c.method for c in h.fake.calls[before:])
            limited = sum(1 for c in h.fake.rate_limited if h.fake.calls.index(c) >= before)
            complete = sum(
                1
                for channel, ts, text, _ in asked
                if [m.text for m in h.fake.bot_replies(channel, ts)]
                == [expected_reply(text.replace(f"<@{BOT_USER_ID}> ", "Alice: "))]
            )
    counts = per_method(calls, answers)
    total = sum(counts.values()) * answers
    print(
        f"{version} {'native' if streaming else 'fallback'} x{answers}: "
        f"{elapsed:.1f} s for all; calls/answer {total / answers:.1f}; "
        f"calls/min {total / elapsed * 60:.0f}; 429s {limited}; "
        f"complete {complete}/{answers}; {counts}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--concurrent", type=int, default=8)
    parser.add_argument("--state", type=Path)
    parser.add_argument("--version", default="0.12.4")
    parser.add_argument("--interval", type=float, default=1.0, help="SLACK_UPDATE_INTERVAL")
    args = parser.parse_args()
    with bench_servers(args.state, (args.version,)) as pool:
        for streaming in (True, False):
            if args.turns:
                await sequential(pool, args.version, streaming, args.turns, args.interval)
            if args.concurrent:
                await concurrent(pool, args.version, streaming, args.concurrent, args.interval)


if __name__ == "__main__":
    asyncio.run(main())
