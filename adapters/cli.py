"""The ``owui-bridge`` command: ``chat``, ``check`` and (with platform adapters) ``run``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from slack_sdk.errors import SlackApiError

from adapters.console.chat import run_chat
from adapters.runtime import make_client, open_runtime, start_live_events
from adapters.slack.app import SlackAdapter, identify
from adapters.slack.app import make_client as make_slack_client
from adapters.slack.settings import SlackSettings
from bridge.config import ConfigError, Settings, load_settings, read_settings
from bridge.errors import AuthRejected, BridgeError

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


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.bridge_log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Request lines at INFO drown the conversation; warnings still show.
    for noisy in ("httpx", "socketio", "engineio", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, settings_level(settings)))


def settings_level(settings: Settings) -> int:
    return logging.getLevelName(settings.bridge_log_level)  # type: ignore[no-any-return]


def _slack_settings(config: Path | None) -> SlackSettings:
    settings = read_settings(SlackSettings, config)
    if settings.problems():
        raise ConfigError("; ".join(settings.problems()))
    return settings


async def _run(settings: Settings, slack: SlackSettings) -> int:
    if not slack.enabled:
        print("owui-bridge: no platform configured (set SLACK_BOT_TOKEN)", file=sys.stderr)
        return 2
    if not settings.openwebui_model:
        print("owui-bridge: set OPENWEBUI_MODEL", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with open_runtime(settings) as runtime:
        adapter = SlackAdapter(runtime.bridge, slack)
        await adapter.start()
        # Answers a previous run left half-way are finished (or apologised for) now.
        recovery = asyncio.create_task(
            runtime.bridge.recover("slack", adapter.recovery_reply, adapter.capabilities)
        )
        try:
            await stop.wait()
        finally:
            await adapter.stop()  # no new events from here on
            recovery.cancel()
            # Answers under way get a grace period; any still running are finished
            # by the next start's recovery.
            await runtime.bridge.drain(SHUTDOWN_GRACE)
    return 0


async def _chat(settings: Settings, thread: str | None, model: str | None) -> int:
    if not (model or settings.openwebui_model):
        print("owui-bridge: set OPENWEBUI_MODEL or pass --model", file=sys.stderr)
        return 2
    async with open_runtime(settings, model=model) as runtime:
        failures = await run_chat(runtime.bridge, thread, model=model)
    return 1 if failures else 0


async def _check(settings: Settings, slack: SlackSettings) -> int:
    """Report each check on its own line; exit 1 if any failed."""
    ok = True

    def report(name: str, passed: bool, detail: str) -> None:
        nonlocal ok
        ok = ok and passed
        print(f"{'ok  ' if passed else 'FAIL'} {name}: {detail}")

    client = make_client(settings)
    try:
        try:
            server = await client.connect()
        except AuthRejected as exc:
            # The server answered (its version is known); the sign-in did not work.
            version = client.server.version if client.server else "?"
            report("open webui", True, f"{settings.openwebui_url} version {version}")
            report("auth", False, str(exc))
            return 1
        except BridgeError as exc:
            report("open webui", False, f"{settings.openwebui_url}: {exc}")
            return 1
        report("open webui", True, f"{settings.openwebui_url} version {server.version}")
        try:
            await client.models()
            live = await start_live_events(settings, client)
            follow = "live events" if live else "polling"
            if live:
                await live.close()
            report(
                "auth", True, f"{client.auth_mode.replace('_', ' ')}; answers followed by {follow}"
            )
        except BridgeError as exc:
            report("auth", False, str(exc))
            return 1
        if settings.openwebui_model:
            try:
                await client.model(settings.openwebui_model)
                report("model", True, f"{settings.openwebui_model} is available")
            except BridgeError as exc:
                report("model", False, str(exc))
        else:
            report("model", False, "OPENWEBUI_MODEL is not set")
        for knowledge_id in settings.openwebui_knowledge_ids:
            try:
                knowledge = await client.knowledge(knowledge_id)
                report("knowledge", True, f"{knowledge_id} ({knowledge.get('name', '?')})")
            except BridgeError as exc:
                report("knowledge", False, str(exc))
    finally:
        await client.aclose()
    if slack.enabled:
        try:
            identity = await identify(make_slack_client(slack))
            report("slack", True, f"bot {identity.user_id} in team {identity.team_id}")
            if identity.missing_scopes:
                report("slack scopes", False, "missing " + ", ".join(identity.missing_scopes))
        except SlackApiError as exc:
            report("slack", False, f"auth.test failed: {exc.response.get('error')}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        slack = _slack_settings(args.config)
    except ConfigError as exc:
        print(f"owui-bridge: {exc}", file=sys.stderr)
        return 2
    _setup_logging(settings)
    try:
        if args.command == "chat":
            return asyncio.run(_chat(settings, args.thread, args.model))
        if args.command == "run":
            return asyncio.run(_run(settings, slack))
        return asyncio.run(_check(settings, slack))
    except BridgeError as exc:
        print(f"owui-bridge: {exc.user_message} ({exc})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
