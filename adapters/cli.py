"""The ``owui-bridge`` command: ``chat``, ``check`` and (with platform adapters) ``run``."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from adapters.check import run_check as _check
from adapters.console.chat import run_chat
from adapters.discord.app import DiscordAdapter
from adapters.discord.settings import DiscordSettings
from adapters.logs import setup_logging
from adapters.runtime import open_runtime
from adapters.slack.app import SlackAdapter
from adapters.slack.settings import SlackSettings
from adapters.web import WebServer
from bridge.channels import Channels, load_channels
from bridge.config import (
    ConfigError,
    Settings,
    load_settings,
    read_config_file,
    read_settings,
)
from bridge.errors import BridgeError
from bridge.redaction import redact

SHUTDOWN_GRACE = 30.0  # seconds answers under way may take to finish on shutdown


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="owui-bridge", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML file with settings")
    commands = parser.add_subparsers(dest="command", required=True)
    chat = commands.add_parser("chat", help="talk to the model from this terminal")
    chat.add_argument("--thread", help="resume (or name) a thread; default: a new one")
    chat.add_argument("--model", help="model id for a new thread (default OPENWEBUI_MODEL)")
    commands.add_parser("check", help="validate settings and reach Open WebUI and platforms")
    commands.add_parser("run", help="serve every platform whose credentials are set")
    return parser


def _slack_settings(config: Mapping[str, Any]) -> SlackSettings:
    settings = read_settings(SlackSettings, config)
    if settings.problems():
        raise ConfigError("; ".join(settings.problems()))
    return settings


class Served(Protocol):
    """A platform adapter as ``run`` drives it."""

    @property
    def name(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """No new questions from here on."""
        ...

    async def close(self) -> None:
        """After the drain: release what answers under way still needed."""
        ...


async def _run(
    settings: Settings, channels: Channels, slack: SlackSettings, discord: DiscordSettings
) -> int:
    if not (slack.enabled or discord.enabled):
        print(
            "owui-bridge: no platform configured (set SLACK_BOT_TOKEN or DISCORD_BOT_TOKEN)",
            file=sys.stderr,
        )
        return 2
    if not channels.defaults.model:
        print("owui-bridge: set OPENWEBUI_MODEL", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with open_runtime(settings, channels=channels) as runtime:
        web = WebServer()
        web.add_check("openwebui", runtime.client.reachable)
        web.add_check("database", runtime.store.writable)
        adapters: list[Served] = []
        if slack.enabled:
            adapters.append(SlackAdapter(runtime.bridge, slack, web_server=web))
        if discord.enabled:
            adapters.append(
                DiscordAdapter(runtime.bridge, discord, places=runtime.store, web_server=web)
            )
        await web.start(settings.bridge_http_host, settings.bridge_http_port)
        started: list[Served] = []
        try:
            for adapter in adapters:
                await adapter.start()
                started.append(adapter)
                # Questions a previous run left queued or half-answered go first, in order.
                await runtime.bridge.resume(adapter.name)
            await stop.wait()
        finally:
            for adapter in started:
                await adapter.stop()  # no new questions from here on
            # Answers under way (and queued behind them) get a grace period; what is
            # left is resumed by the next start.
            await runtime.bridge.drain(SHUTDOWN_GRACE)
            for adapter in adapters:
                await adapter.close()
            await web.stop()
    return 0


async def _chat(
    settings: Settings, channels: Channels, thread: str | None, model: str | None
) -> int:
    if not (model or channels.defaults.model):
        print("owui-bridge: set OPENWEBUI_MODEL or pass --model", file=sys.stderr)
        return 2
    async with open_runtime(settings, model=model, channels=channels) as runtime:
        failures = await run_chat(runtime.bridge, thread, model=model)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = read_config_file(args.config)
        settings = load_settings(config)
        slack = _slack_settings(config)
        discord = read_settings(DiscordSettings, config)
        channels = load_channels(settings, config)
    except ConfigError as exc:
        print(f"owui-bridge: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings, slack, discord)
    try:
        if args.command == "chat":
            return asyncio.run(_chat(settings, channels, args.thread, args.model))
        if args.command == "run":
            return asyncio.run(_run(settings, channels, slack, discord))
        return asyncio.run(_check(settings, slack, discord, channels))
    except ConfigError as exc:
        # A platform refused to start for a reason the operator must fix (one line).
        print(redact(f"owui-bridge: {exc}"), file=sys.stderr)
        return 2
    except BridgeError as exc:
        print(redact(f"owui-bridge: {exc.user_message} ({exc})"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
