from __future__ import annotations

from pathlib import Path

import pytest

from tests.contract.bridge_fixtures import BridgeFactory, bridge_factory
from tests.harness.openwebui import RunningOpenWebUI


@pytest.fixture
def make_bridge(openwebui: RunningOpenWebUI, tmp_path: Path) -> BridgeFactory:
    return bridge_factory(openwebui, tmp_path)
