"""CLI: ``python -m tests.harness install|serve``.

``serve`` starts the slow servers once so many pytest runs can reuse them:
``OWUI_BRIDGE_TEST_SERVERS=.test-artifacts/servers.json pytest ...``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.harness.model_server import ModelServer
from tests.harness.openwebui import (
    VERSIONS,
    RunningOpenWebUI,
    ensure_installed,
    start_server,
    write_state,
)

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / ".test-artifacts"


def cmd_install(versions: list[str]) -> int:
    # Mostly download and unpacking: three at once take about the time of one or two.
    with ThreadPoolExecutor(3) as pool:
        for version, venv in zip(versions, pool.map(ensure_installed, versions), strict=True):
            print(f"open-webui {version}: {venv}", flush=True)
    return 0


def cmd_serve(versions: list[str], state: Path) -> int:
    stop = threading.Event()
    # SIGTERM behaves like Ctrl-C so the servers get cleaned up either way.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    model = ModelServer.run_in_thread()
    servers: dict[str, RunningOpenWebUI] = {}
    try:
        with ThreadPoolExecutor(len(versions)) as pool:
            futures = {
                v: pool.submit(start_server, v, model.url, workdir=ARTIFACTS / "serve")
                for v in versions
            }
            for version, future in futures.items():
                servers[version] = future.result()
                s = servers[version]
                print(
                    f"open-webui {version}: {s.url} (healthy in {s.startup_seconds}s)", flush=True
                )
        write_state(state, model.url, servers)
        print(f"model server: {model.url}\nstate: {state}\nCtrl-C to stop", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for s in servers.values():
            s.stop()
        model.stop()
        state.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness")
    sub = parser.add_subparsers(dest="command", required=True)
    install = sub.add_parser("install", help="install Open WebUI virtualenvs")
    serve = sub.add_parser("serve", help="run model server + Open WebUI until Ctrl-C")
    for p in (install, serve):
        p.add_argument(
            "--version",
            action="append",
            choices=VERSIONS,
            dest="versions",
            help="repeatable; default: all",
        )
    serve.add_argument("--state", type=Path, default=ARTIFACTS / "servers.json")
    args = parser.parse_args(argv)
    versions = args.versions or list(VERSIONS)
    if args.command == "install":
        return cmd_install(versions)
    return cmd_serve(versions, args.state)


if __name__ == "__main__":
    sys.exit(main())
