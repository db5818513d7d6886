"""Open WebUI requests per turn, against real Open WebUI servers (every release).

Each release gets a fresh bridge (live events, an empty database) and, through the
real core, a thread in a channel the bridge has not filed yet, with a link back
(filing included: folder, tags, link), then:

  new thread   the thread's first turn (a new chat in a new channel's folder)
  follow-up    a later turn in the same thread by the same person
  new asker    a later turn by someone who had not asked there yet (one more tag)
  2nd thread   the first turn of another thread in the same (now filed) channel
  stopped      a turn stopped after its first words (⏹), with its closing requests
  failed       a turn whose model fails (an upstream 500)

and prints one row per release. ``--calls`` lists each turn's requests (method,
path; "+history" marks a whole-history write).

Usage:  .venv/bin/python -m bench.requests --state .test-artifacts/all.json [--version 0.12.4]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from adapters.runtime import Runtime, open_runtime
from bench.servers import bench_servers
from bridge.events import PlatformEvent
from tests.contract.bridge_fixtures import RecordingReply, event, settings_for, submit
from tests.harness.openwebui import VERSIONS, RunningOpenWebUI

COLUMNS = ("new thread", "follow-up", "new asker", "2nd thread", "stopped", "failed")


@dataclass
class Recorder:
    """Every request the bridge's Open WebUI client sends (method, path)."""

    calls: list[str] = field(default_factory=list)

    def install(self, runtime: Runtime) -> None:
        send = runtime.client.request

        async def request(method: str, path: str, **kwargs: Any) -> Any:
            body = kwargs.get("json")
            chat = body.get("chat") if isinstance(body, dict) else None
            written = "+history" if isinstance(chat, dict) and "history" in chat else ""
            self.calls.append(f"{method} {path}{written}")
            return await send(method, path, **kwargs)

        runtime.client.request = request  # type: ignore[method-assign]

    def take(self) -> list[str]:
        taken, self.calls[:] = list(self.calls), []
        return taken


def question(text: str, thread: str, place: str, author: str) -> PlatformEvent:
    return replace(
        event(text, thread, author=author),
        place=place,
        place_name=f"#{place}",
        link=f"https://example.invalid/{place}/{thread}",
    )


async def turn(
    runtime: Runtime,
    asked: PlatformEvent,
    during: Callable[[RecordingReply], Awaitable[None]] | None = None,
) -> None:
    reply = RecordingReply()
    pending = await submit(runtime, asked, reply)
    if during is not None:
        await during(reply)
    await pending


async def stop_after_first_words(runtime: Runtime, asked: PlatformEvent) -> None:
    async def stop(reply: RecordingReply) -> None:
        for _ in range(1500):  # at most 30 s
            if reply.updates:
                break
            await asyncio.sleep(0.02)
        await runtime.bridge.stop(asked.thread)

    await turn(runtime, asked, stop)


async def measure(server: RunningOpenWebUI) -> dict[str, list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(server, Path(tmp) / "bench.db", "events")
        async with open_runtime(settings) as runtime:
            recorder = Recorder()
            recorder.install(runtime)
            place = f"bench-{uuid.uuid4().hex[:8]}"
            a, b, c, d = (f"{place}-{n}" for n in "abcd")
            costs: dict[str, list[str]] = {}
            await turn(runtime, question("first [[words=5]]", a, place, "Alice"))
            costs["new thread"] = recorder.take()
            await turn(runtime, question("again [[words=5]]", a, place, "Alice"))
            costs["follow-up"] = recorder.take()
            await turn(runtime, question("me too [[words=5]]", a, place, "Bob"))
            costs["new asker"] = recorder.take()
            await turn(runtime, question("other [[words=5]]", b, place, "Alice"))
            costs["2nd thread"] = recorder.take()
            await turn(runtime, question("warm up [[words=5]]", c, place, "Alice"))
            recorder.take()
            await stop_after_first_words(
                runtime, question("stop me [[words=400]] [[delay=0.05]]", c, place, "Alice")
            )
            costs["stopped"] = recorder.take()
            await turn(runtime, question("warm up [[words=5]]", d, place, "Alice"))
            recorder.take()
            await turn(runtime, question("please fail [[fail=500]]", d, place, "Alice"))
            costs["failed"] = recorder.take()
    return costs


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", type=Path)
    parser.add_argument("--version", action="append", choices=VERSIONS)
    parser.add_argument("--calls", action="store_true", help="list each turn's requests")
    args = parser.parse_args()
    versions = tuple(args.version or VERSIONS)
    with bench_servers(args.state, versions) as pool:
        print("Open WebUI requests per turn (live events; filing included)")
        print(f"{'release':<8} " + " ".join(f"{c:>10}" for c in COLUMNS))
        for version in versions:
            costs = await measure(pool.get(version))
            print(f"{version:<8} " + " ".join(f"{len(costs[c]):>10}" for c in COLUMNS))
            if args.calls:
                for column in COLUMNS:
                    print(f"  {column}: " + ", ".join(costs[column]))


if __name__ == "__main__":
    asyncio.run(main())
