"""``owui-bridge`` as a real process, as a user or a container starts it.

``BridgeProcess`` starts it with an environment on top of ``clean_env()``, waits until
/healthz or /readyz answers (failing with its output if it exits first), and stops it
with SIGTERM, then SIGKILL if it does not end. Its output (stdout and stderr together)
goes to a file: a pipe nobody reads could block it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.harness.env import clean_env
from tests.harness.openwebui import RunningOpenWebUI, free_port

# The installed console script, as a user runs it.
_SCRIPT = Path(sys.executable).with_name("owui-bridge")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "adapters.cli"]
STOP_GRACE = 40.0  # the bridge drains answers under way for up to 30 s after SIGTERM

T = TypeVar("T")


def bridge_env(openwebui: RunningOpenWebUI, database: Path) -> dict[str, str]:
    """What every test's bridge is given (its Open WebUI credentials aside): the server
    and its model, a database, /healthz and /readyz on a free loopback port."""
    return {
        "OPENWEBUI_URL": openwebui.url,
        "OPENWEBUI_MODEL": "fake-model",
        "BRIDGE_DATABASE": str(database),
        "BRIDGE_HTTP_HOST": "127.0.0.1",
        "BRIDGE_HTTP_PORT": str(free_port()),
    }


class BridgeProcess:
    """One bridge process; ``async with`` stops it (if still running) on the way out."""

    def __init__(
        self,
        log: Path,
        *,
        command: Sequence[str] = COMMAND,
        cwd: Path | None = None,
        clean: bool = True,
        own_group: bool = False,
        **popen: Any,
    ) -> None:
        """``clean``: the environment given goes on top of ``clean_env()`` (False: it is
        the whole environment, as an image's). ``own_group``: its own process group,
        which ``kill`` kills whole. ``popen``: more arguments for the process (a user)."""
        self.log = log
        self.env: dict[str, str] = {}
        self.killed = False  # ``stop`` had to SIGKILL it
        self._command, self._cwd, self._clean = list(command), cwd, clean
        self._own_group, self._popen = own_group, popen
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> BridgeProcess:
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._proc is not None:
            await self.stop()

    async def start(self, env: Mapping[str, str], args: Sequence[str] = ("run",)) -> BridgeProcess:
        """Start the command with ``args`` (``owui-bridge run`` by default)."""
        self.env = (clean_env() if self._clean else {}) | dict(env)
        with self.log.open("wb") as out:
            self._proc = await asyncio.create_subprocess_exec(
                *self._command, *args,
                env=self.env, cwd=self._cwd, stdout=out, stderr=asyncio.subprocess.STDOUT,
                start_new_session=self._own_group, **self._popen,
            )  # fmt: skip
        return self

    @property
    def proc(self) -> asyncio.subprocess.Process:
        assert self._proc is not None, "not started"
        return self._proc

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def url(self) -> str:
        """Where its /healthz and /readyz (and Slack's HTTP events) are served."""
        return f"http://127.0.0.1:{self.env['BRIDGE_HTTP_PORT']}"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def terminate(self) -> None:
        """SIGTERM, as a user's Ctrl-C, Docker or Kubernetes stops it."""
        if self.running:
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL (its whole process group, if it has its own)."""
        if not self.running:
            return
        if self._own_group:
            os.killpg(self.proc.pid, signal.SIGKILL)
        else:
            self.proc.kill()

    async def wait(self, timeout: float) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def stop(self, grace: float = STOP_GRACE) -> int:
        """SIGTERM; SIGKILL if it is still running ``grace`` seconds later. Its exit code."""
        self.terminate()
        try:
            return await self.wait(grace)
        except TimeoutError:
            self.killed = True
            self.kill()
            return await self.wait(10)

    async def until(self, awaitable: Awaitable[T], what: str) -> T:
        """``awaitable``'s result; AssertionError with the output if the process exits
        first or ``awaitable`` fails."""
        task = asyncio.ensure_future(awaitable)
        exited = asyncio.ensure_future(self.proc.wait())
        try:
            await asyncio.wait({task, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise AssertionError(
                f"bridge exited ({self.returncode}) before {what}:\n{self.output()}"
            )
        error = task.exception()
        if error is not None:
            raise AssertionError(f"bridge: no {what} ({error!r}):\n{self.output()}") from error
        return task.result()

    async def wait_ready(
        self, path: str = "/readyz", want_status: int = 200, timeout: float = 60.0
    ) -> httpx.Response:
        """The first answer of ``path`` with ``want_status`` (checks are cached a few
        seconds, so a change shows a little later)."""
        return await self.until(
            self._poll(path, want_status, timeout), f"{path} answering {want_status}"
        )

    async def _poll(self, path: str, want_status: int, timeout: float) -> httpx.Response:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    response = await client.get(f"{self.url}{path}")
                    if response.status_code == want_status:
                        return response
                if loop.time() > deadline:
                    raise TimeoutError(f"not within {timeout:g} s")
                await asyncio.sleep(0.25)


async def run_to_end(env: Mapping[str, str], *args: str, timeout: float = 60) -> tuple[int, str]:
    """``owui-bridge ARGS`` to its end (async: a fake platform may run in this loop):
    its exit code and output; killed if it runs past ``timeout``."""
    proc = await asyncio.create_subprocess_exec(
        *COMMAND, *args, env=clean_env() | dict(env), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode()
