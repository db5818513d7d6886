"""Slack Web API calls per answer and time to first visible text.

Runs the real Slack adapter (Socket Mode) against the local Slack-compatible
server and a real Open WebUI, for a ~500-word answer, with native streaming
and with the post+update fallback. Prints calls per answer by method and the
median time from event delivery to the first bot text in the thread (the fake
model's first-token delay is 0).

Usage: .venv/bin/python -m bench.slack [--turns 20] [--interval 1.0]
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
from tests.harness.openwebui import ServerPool

# ~30 words a second, as a model streams; first-token delay 0.
QUESTION = f"<@{BOT_USER_ID}" + "> bench {n} [[words=500]] [[delay=0.1]] [[first=0]]"


async def run(pool: ServerPool, version: str, streaming: bool, turns: int, interval: float) -> None:
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
    per_answer = {
        m: round(c / turns, 1) for m, c in sorted(calls.items()) if m not in ("users.info",)
    }
    print(
        f"{version} {'native' if streaming else 'fallback'}: "
        f"first text median {statistics.median(firsts) * 1000:.0f} ms; "
        f"calls/answer {sum(per_answer.values()):.1f} {per_answer}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--state", type=Path)
    parser.add_argument("--version", default="0.12.4")
    parser.add_argument("--interval", type=float, default=1.0, help="SLACK_UPDATE_INTERVAL")
    args = parser.parse_args()
    with bench_servers(args.state, (args.version,)) as pool:
        for streaming in (True, False):
            await run(pool, args.version, streaming, args.turns, args.interval)


if __name__ == "__main__":
    asyncio.run(main())
