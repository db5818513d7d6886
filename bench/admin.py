"""What the admin features cost, against real Open WebUI servers:
  - Open WebUI requests filing adds per conversation (first turn, later turns),
  - time from a reaction reaching the core to the rating stored in Open WebUI
    (``Bridge.rate``: the chat read for the snapshot, then the feedback write),
    median, min and max of N ratings (alternating 👍/👎 by one person, then removals).

Usage:  .venv/bin/python -m bench.admin [--ratings 20] [--state .test-artifacts/servers.json]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from adapters.runtime import open_runtime
from bench.servers import bench_servers
from bridge.openwebui.organise import Rater
from tests.contract.bridge_fixtures import RecordingReply, event, rate, settings_for, submit
from tests.harness.openwebui import VERSIONS, RunningOpenWebUI


async def measure(server: RunningOpenWebUI, ratings: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(server, Path(tmp) / "bench.db", "polling")
        async with open_runtime(settings) as runtime:
            place = f"bench-{uuid.uuid4().hex[:8]}"
            thread = f"t-{place}"
            counts = []
            replies = []
            for n in range(3):
                asked = replace(
                    event(f"bench question {n} [[words=10]]", thread, author=f"Asker {n % 2}"),
                    place=place,
                    place_name=f"#{place}",
                    link=f"https://example.invalid/{thread}",
                )
                reply = RecordingReply()
                before = runtime.client.requests_sent
                result = await (await submit(runtime, asked, reply))
                assert result.error is None, result
                counts.append(runtime.client.requests_sent - before)
                replies.append(reply)
            rater = Rater("test", "u-bench", "Bench")
            timings = []
            message = replies[-1].message_id
            for n in range(ratings):
                started = time.perf_counter()
                await rate(runtime, message, rater, 1 if n % 2 == 0 else -1)
                timings.append(time.perf_counter() - started)
            await rate(runtime, message, rater, 1 if ratings % 2 else -1, removed=True)
    return {"requests": counts, "timings": timings}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ratings", type=int, default=20)
    parser.add_argument("--state", type=Path)
    parser.add_argument("--version", action="append", choices=VERSIONS)
    args = parser.parse_args()
    versions = tuple(args.version or VERSIONS)
    with bench_servers(args.state, versions) as pool:
        for version in versions:
            r = await measure(pool.get(version), args.ratings)
            requests, timings = r["requests"], r["timings"]
            ms = [t * 1000 for t in timings]  # type: ignore[attr-defined]
            print(
                f"{version}: requests per turn (first, 2nd, 3rd; filing included) {requests};"
                f" reaction→stored rating median {statistics.median(ms):.1f} ms"
                f" (min {min(ms):.1f}, max {max(ms):.1f}) over {len(ms)} ratings"
            )


if __name__ == "__main__":
    asyncio.run(main())
