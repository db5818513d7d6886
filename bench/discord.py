"""Discord REST calls per answer and time to first visible text.

Runs the real Discord adapter (discord.py) against the local Discord-compatible
server and a real Open WebUI, for ~500-word answers streamed at ~30 words a
second (the fake model's first-token delay is 0, so nothing is subtracted):
the median time from MESSAGE_CREATE to the first bot text in the thread, and
REST calls per answer by route. Run beside ``bench.slack`` on the same machine.

Usage: .venv/bin/python -m bench.discord [--turns 20] [--interval 1.0]
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

from adapters.discord.app import DiscordAdapter, intents, make_client
from adapters.discord.settings import DiscordSettings
from adapters.runtime import open_runtime
from bench.servers import bench_servers
from tests.contract.bridge_fixtures import settings_for
from tests.fakes.discord_server import BOT_USER_ID, FakeDiscord, point_discord_py_at
from tests.harness.openwebui import ServerPool

QUESTION = f"<@{BOT_USER_ID}" + "> bench {n} [[words=500]] [[delay=0.1]] [[first=0]]"


async def run(pool: ServerPool, version: str, turns: int, interval: float) -> None:
    firsts: list[float] = []
    calls: collections.Counter[str] = collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeDiscord() as fake:
            guild = fake.add_guild("Bench")
            channel = fake.add_channel(guild, "general")
            ada = fake.add_user(name="ada", global_name="Ada")
            fake.add_member(guild, ada)
            settings = DiscordSettings(
                bot_token="bench-token",
                api_url=fake.api_url,
                gateway_url=fake.gateway_url,
                update_interval=interval,
            )
            with point_discord_py_at(fake):
                async with open_runtime(settings_for(pool.get(version), Path(tmp) / "b.db")) as rt:
                    client = make_client(intents(), guild_ready_timeout=0.05)
                    adapter = DiscordAdapter(rt.bridge, settings, places=rt.store, client=client)
                    await adapter.start()
                    try:
                        for n in range(turns):
                            before = len(fake.calls)
                            message = fake.user_says(channel, ada, QUESTION.format(n=n))
                            sent = time.monotonic()
                            thread = message.id
                            await fake.wait_for(
                                lambda t=thread: bool(fake.bot_messages(t)), timeout=60
                            )
                            firsts.append(time.monotonic() - sent)
                            await fake.wait_for(lambda: rt.bridge.idle, timeout=120)
                            for call in fake.calls[before:]:
                                calls[f"{call.method} {call.route}"] += 1
                    finally:
                        await adapter.close()
    per_answer = {route: round(count / turns, 1) for route, count in sorted(calls.items())}
    print(
        f"{version} discord: first text median {statistics.median(firsts) * 1000:.0f} ms "
        f"(min {min(firsts) * 1000:.0f}, max {max(firsts) * 1000:.0f}); "
        f"REST calls/answer {sum(per_answer.values()):.1f} {per_answer}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--state", type=Path)
    parser.add_argument("--version", default="0.12.4")
    parser.add_argument("--interval", type=float, default=1.0, help="DISCORD_UPDATE_INTERVAL")
    args = parser.parse_args()
    with bench_servers(args.state, (args.version,)) as pool:
        await run(pool, args.version, args.turns, args.interval)


if __name__ == "__main__":
    asyncio.run(main())
