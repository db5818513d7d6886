"""``/readyz`` as a load balancer or Kubernetes polls it, on the real ``owui-bridge run``
process: ready only while Open WebUI answers, each platform is connected and the
database takes a write."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from tests.e2e.test_slack_cli import SECRET, base_env
from tests.fakes.slack_server import FakeSlack
from tests.harness.bridge_process import BridgeProcess
from tests.harness.openwebui import RunningOpenWebUI


class Gate:
    """A TCP forwarder to Open WebUI that can be shut (Open WebUI stopped, as far as
    the bridge can tell: connections refused or cut) and opened again."""

    def __init__(self, target: str) -> None:
        host, _, port = target.removeprefix("http://").partition(":")
        self._target = (host, int(port))
        self._open = True
        self._pipes: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> Gate:
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *_: object) -> None:
        self.shut()
        if self._server is not None:
            self._server.close()

    def shut(self) -> None:
        self._open = False
        for writer in list(self._pipes):
            writer.close()

    def open(self) -> None:
        self._open = True

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._open:
            writer.close()
            return
        upstream_reader, upstream = await asyncio.open_connection(*self._target)
        self._pipes |= {writer, upstream}
        await asyncio.gather(self._pipe(reader, upstream), self._pipe(upstream_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()
        self._pipes.discard(writer)


async def readiness(bridge: BridgeProcess, want: int, timeout: float = 30) -> dict[str, Any]:
    """/readyz's body once it answers ``want`` (checks are cached for a few seconds)."""
    return dict((await bridge.wait_ready("/readyz", want, timeout)).json())


async def test_readyz_follows_open_webui_going_away_and_coming_back(
    openwebui: RunningOpenWebUI, tmp_path: Path
) -> None:
    async with FakeSlack() as fake, Gate(openwebui.url) as gate:
        env = base_env(openwebui, fake, tmp_path) | {
            "OPENWEBUI_URL": gate.url,
            "SLACK_SIGNING_SECRET": SECRET,
        }
        bridge = await BridgeProcess(tmp_path / "bridge.log").start(env)
        try:
            ready = await readiness(bridge, 200, timeout=60)
            assert ready == {
                "ready": True,
                "checks": {"openwebui": True, "database": True, "slack": True},
            }
            gate.shut()
            down = await readiness(bridge, 503)
            assert (down["ready"], down["failed"]) == (False, ["openwebui"])
            gate.open()
            assert (await readiness(bridge, 200))["ready"] is True
        finally:
            code = await bridge.stop(grace=30)
        assert code == 0, bridge.output()
