from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.contract.bridge_fixtures import BridgeFactory, bridge_factory
from tests.harness.bridge_process import COMMAND
from tests.harness.env import clean_env
from tests.harness.openwebui import RunningOpenWebUI

CHROMIUM = "/usr/bin/chromium"


# The browser tests' (test_render*.py) Chromium.
@pytest.fixture(scope="session")
def chromium(in_ci: bool) -> str:
    """Debian's chromium; missing is a skip on a laptop and a failure in CI."""
    if shutil.which(CHROMIUM) is None:
        reason = f"Debian chromium not installed at {CHROMIUM} (make test-deps installs it)"
        if in_ci:
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture
def make_bridge(openwebui: RunningOpenWebUI, tmp_path: Path) -> BridgeFactory:
    return bridge_factory(openwebui, tmp_path)


def with_api_key(server: RunningOpenWebUI, **extra: str) -> dict[str, str]:
    """CLI environment for ``server`` with its API key (polling), plus ``extra``."""
    return {
        "OPENWEBUI_URL": server.url,
        "OPENWEBUI_API_KEY": server.api_key,
        "OPENWEBUI_MODEL": "fake-model",
        **extra,
    }


def signed_in(server: RunningOpenWebUI, password: str | None = None) -> dict[str, str]:
    """CLI environment that signs in as the admin (a JWT: live events)."""
    return {
        "OPENWEBUI_URL": server.url,
        "OPENWEBUI_EMAIL": server.admin_email,
        "OPENWEBUI_PASSWORD": server.admin_password if password is None else password,
        "OPENWEBUI_MODEL": "fake-model",
    }


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


Cli = Callable[..., CliResult]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """Run the real ``owui-bridge`` command (stdin piped, not a tty) in ``tmp_path``."""

    def run(*args: str, env: dict[str, str], stdin: str = "", timeout: float = 180) -> CliResult:
        clean = clean_env()
        started = time.monotonic()
        proc = subprocess.run(
            [*COMMAND, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=clean | {"BRIDGE_DATABASE": str(tmp_path / "b.db")} | env,
            cwd=tmp_path,
            timeout=timeout,
            check=False,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)

    return run
