"""Shared fixtures: a fake model server and real Open WebUI servers.

Env:
  OWUI_VERSIONS=0.12.4[,0.6.15]   restrict the Open WebUI versions under test
  OWUI_BRIDGE_TEST_SERVERS=FILE   reuse servers from ``python -m tests.harness serve``
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.model_server import (
    ModelServer,
    RemoteModelServer,
    ThreadedModelServer,
)
from tests.harness.openwebui import VERSIONS, RunningOpenWebUI, ServerPool

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / ".test-artifacts"
SELECTED = tuple(
    v.strip() for v in os.environ.get("OWUI_VERSIONS", ",".join(VERSIONS)).split(",") if v.strip()
)
STATE_FILE = os.environ.get("OWUI_BRIDGE_TEST_SERVERS")


@pytest.fixture(scope="session")
def model_server() -> Iterator[ThreadedModelServer | RemoteModelServer]:
    if STATE_FILE:
        yield ServerPool.from_state(Path(STATE_FILE)).model
        return
    server = ModelServer.run_in_thread()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def openwebui_pool(model_server: ThreadedModelServer | RemoteModelServer) -> Iterator[ServerPool]:
    pool = (
        ServerPool.from_state(Path(STATE_FILE))
        if STATE_FILE
        else ServerPool(model_server, SELECTED, ARTIFACTS / "openwebui")
    )
    yield pool
    pool.stop_all()


@pytest.fixture(scope="session", params=SELECTED, ids=[f"owui-{v}" for v in SELECTED])
def openwebui(request: pytest.FixtureRequest, openwebui_pool: ServerPool) -> RunningOpenWebUI:
    return openwebui_pool.get(request.param)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "openwebui" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.openwebui)
