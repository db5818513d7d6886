"""Servers for a benchmark: reuse ``make servers`` (``--state``) or start our own."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.harness.model_server import ModelServer
from tests.harness.openwebui import ServerPool


@contextmanager
def bench_servers(state: Path | None, versions: tuple[str, ...]) -> Iterator[ServerPool]:
    if state is not None:
        yield ServerPool.from_state(state)
        return
    model = ModelServer.run_in_thread()
    pool = ServerPool(model, versions, Path(tempfile.mkdtemp(prefix="owui-bench-")))
    try:
        yield pool
    finally:
        pool.stop_all()
        model.stop()
