"""One bridge process for ``bench.load``: what ``owui-bridge run`` runs (``open_runtime``
plus the Slack adapter in Socket Mode and the Discord adapter), and a ticker in its
event loop measuring how late the loop wakes (loop lag).

Started by ``bench.load`` and ``bench.recovery`` with one JSON argument (the URLs of
the stand-ins and the settings: ``"database"`` a PostgreSQL URL, else a SQLite file of
its own; ``"replicas"`` how many bridge processes share the platforms' limits;
``"lease_seconds"``; ``"slack_bot_token"``, which the fake Slack records on each call);
talks over stdin/stdout, one JSON object a line:
  → ``{"ready": true, "pid": …}`` once the adapters are connected and the lease keeper runs
  ← ``mark``   the measured window starts: CPU time noted, lag samples cleared
  ← ``idle``   → ``{"idle": bool}`` (no turn queued or under way)
  ← ``stop``   → ``{"cpu": s, "rss_peak_mb": …, "lag_ms": […], "turns": n,
                "taken_over": n}`` and the process ends
CPU is this process's (all threads) from ``/proc/self/stat``; RSS peak is ``VmHWM``
from ``/proc/self/status``. ``"profile": "FILE"`` writes a cProfile of the window.

Usage: not by hand; see ``bench/load.py``.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client import Counter
from pydantic import SecretStr

from adapters.discord.app import DiscordAdapter, intents, make_client
from adapters.discord.settings import DiscordSettings
from adapters.runtime import open_runtime
from adapters.slack.app import SlackAdapter
from adapters.slack.settings import SlackSettings
from bridge import metrics
from bridge.config import Settings

LAG_TICK = 0.01  # seconds the ticker asks to sleep


def cpu_seconds() -> float:
    """User + system CPU time of this process (every thread), from /proc."""
    with open("/proc/self/stat") as stat:
        # Fields after the command name (which may hold spaces) start at ")".
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def rss_peak_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class LagTicker:
    """Sleeps ``LAG_TICK`` over and over; each oversleep is a sample of loop lag."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_TICK)
            self.samples.append(max(0.0, loop.time() - before - LAG_TICK))

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


def settings_from(config: dict[str, Any], db: Path) -> Settings:
    settings = Settings(
        openwebui_url=config["openwebui_url"],
        openwebui_api_key=SecretStr(config["openwebui_token"]),
        openwebui_model=config["model"],
        openwebui_follow="events",
        bridge_database=config.get("database") or db,
        bridge_lease_seconds=float(config.get("lease_seconds", 30.0)),
        bridge_user_rate_limit=0,  # every question is taken: per-person limits off
        bridge_log_level="WARNING",
    )
    # The setting stops at 256; the benchmark goes past it to see what 500 costs.
    return settings.model_copy(
        update={"bridge_max_concurrent_turns": int(config["max_concurrent_turns"])}
    )


async def serve(config: dict[str, Any]) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(value: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(value) + "\n")
        sys.stdout.flush()

    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        settings = settings_from(config, Path(tmp) / "bridge.db")
        async with open_runtime(settings) as runtime:
            adapters: list[SlackAdapter | DiscordAdapter] = []
            if config.get("slack_api_url"):
                slack = SlackSettings(
                    bot_token=SecretStr(config.get("slack_bot_token", "xoxb-bench")),
                    app_token=SecretStr("xapp-bench"),
                    api_url=config["slack_api_url"],
                    update_interval=config["update_interval"],
                    replicas=int(config.get("replicas", 1)),
                )
                adapters.append(SlackAdapter(runtime.bridge, slack))
            if config.get("discord_api_url"):
                discord = DiscordSettings(
                    bot_token=SecretStr("bench-discord-token"),
                    api_url=config["discord_api_url"],
                    gateway_url=config["discord_gateway_url"],
                    update_interval=config["update_interval"],
                    replicas=int(config.get("replicas", 1)),
                )
                client = make_client(intents(), guild_ready_timeout=0.05)
                adapters.append(
                    DiscordAdapter(runtime.bridge, discord, places=runtime.store, client=client)
                )
            for adapter in adapters:
                await adapter.start()
                # As ``owui-bridge run``: resume what is left, start the lease keeper.
                await runtime.bridge.resume(adapter.name)
            ticker = LagTicker()
            ticker.start()
            profile = cProfile.Profile() if config.get("profile") else None
            say({"ready": True, "pid": os.getpid()})
            cpu0 = cpu_seconds()
            wall0 = time.monotonic()
            while line := (await reader.readline()).decode().strip():
                if line == "mark":
                    cpu0, wall0 = cpu_seconds(), time.monotonic()
                    ticker.samples.clear()
                    if profile is not None:
                        profile.enable()
                elif line == "idle":
                    say({"idle": runtime.bridge.idle})
                elif line == "stop":
                    if profile is not None:
                        profile.disable()
                        profile.dump_stats(config["profile"])
                    say(
                        {
                            "cpu": cpu_seconds() - cpu0,
                            "wall": time.monotonic() - wall0,
                            "rss_peak_mb": rss_peak_mb(),
                            "lag_ms": [round(s * 1000, 3) for s in ticker.samples],
                            "turns": _count(metrics.TURNS),
                            "taken_over": _count(metrics.TAKEN_OVER),
                        }
                    )
                    break
            ticker.stop()
            for adapter in adapters:
                await adapter.stop()
            await runtime.bridge.drain(5)
            for adapter in adapters:
                await adapter.close()


def _count(counter: Counter) -> int:
    """A counter's total over its labels (this process's registry)."""
    total = sum(
        float(sample.value)
        for family in counter.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )
    return round(total)


def main() -> None:
    asyncio.run(serve(json.loads(sys.argv[1])))


if __name__ == "__main__":
    main()
