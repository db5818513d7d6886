"""Per-turn cost and latency of the bridge against real Open WebUI servers.

For each Open WebUI version and follow mode (live events / polling) it runs N
turns in one thread and prints:
  - Open WebUI HTTP requests per turn (first turn and follow-ups),
  - latency from "event handed to the core" to "first text at the reply
    handle", minus the model server's own first-token delay, median and p95.

Usage:  .venv/bin/python -m bench.turns [--turns 20] [--state .test-artifacts/servers.json]
Without --state it starts the model server and both Open WebUI servers itself.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from adapters.runtime import open_runtime
from bench.servers import bench_servers
from tests.contract.bridge_fixtures import RecordingReply, event, settings_for, submit
from tests.harness.openwebui import VERSIONS, RunningOpenWebUI

# The model answers at once ([[first=0]]), so its own first-token delay is ~0 and
# what remains is the bridge plus Open WebUI.
QUESTION = "benchmark question {n} [[words=40]] [[delay=0.02]] [[first=0]]"


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def measure(server: RunningOpenWebUI, follow: str, turns: int) -> dict[str, object]:
    latencies: list[float] = []
    requests: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(server, Path(tmp) / "bench.db", follow)  # type: ignore[arg-type]
        async with open_runtime(settings) as runtime:
            thread = f"bench-{follow}-{time.time()}"
            for n in range(turns):
                reply = RecordingReply()
                before = runtime.client.requests_sent
                submitted = time.monotonic()
                pending = await submit(runtime, event(QUESTION.format(n=n), thread), reply)
                result = await pending
                assert result.error is None, result
                requests.append(runtime.client.requests_sent - before)
                assert reply.first_text_at is not None
                latencies.append(reply.first_text_at - submitted)
    return {
        "requests_first": requests[0],
        "requests_followup": statistics.median(requests[1:]) if len(requests) > 1 else None,
        "latency_median_ms": round(statistics.median(latencies) * 1000, 1),
        "latency_p95_ms": round(p95(latencies) * 1000, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--state", type=Path)
    parser.add_argument("--version", action="append", choices=VERSIONS)
    args = parser.parse_args()
    versions = tuple(args.version or VERSIONS)
    with bench_servers(args.state, versions) as pool:
        print(
            f"{'version':<8} {'follow':<8} {'req/1st':>7} {'req/next':>8} "
            f"{'median ms':>9} {'p95 ms':>7}"
        )
        for version in versions:
            server = pool.get(version)
            for follow in ("events", "polling"):
                r = await measure(server, follow, args.turns)
                print(
                    f"{version:<8} {follow:<8} {r['requests_first']!s:>7} "
                    f"{r['requests_followup']!s:>8} {r['latency_median_ms']!s:>9} "
                    f"{r['latency_p95_ms']!s:>7}"
                )


if __name__ == "__main__":
    asyncio.run(main())
