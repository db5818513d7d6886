"""Test harness: a fake OpenAI-compatible model server and real Open WebUI servers."""

from tests.harness.model_server import ModelServer, RemoteModelServer, ThreadedModelServer
from tests.harness.openwebui import (
    VERSIONS,
    RunningOpenWebUI,
    UserCredentials,
    ensure_installed,
    start_server,
)

__all__ = [
    "VERSIONS",
    "ModelServer",
    "RemoteModelServer",
    "RunningOpenWebUI",
    "ThreadedModelServer",
    "UserCredentials",
    "ensure_installed",
    "start_server",
]
