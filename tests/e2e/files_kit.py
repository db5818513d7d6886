"""What the Slack and Discord files tests share: files to send, what the model was sent,
what Open WebUI keeps, and a server that refuses a type of file for a while."""

from __future__ import annotations

import base64
import json
import struct
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests import treecheck
from tests.contract.bridge_fixtures import admin_request, fetch_chat, history_of
from tests.contract.test_files import pdf, png, requests_with, uploads_named
from tests.harness.model_server import RemoteModelServer, ThreadedModelServer
from tests.harness.openwebui import RunningOpenWebUI

__all__ = ["marked_png", "pdf", "requests_with", "uploads_named"]

Model = ThreadedModelServer | RemoteModelServer
REFUSED = "exe"  # the extension Open WebUI is told to refuse (``refusing``)
# What the admin allows meanwhile: everything the other tests on the shared servers send.
ALLOWED = ["txt", "md", "pdf", "csv", "json", "py", "html", "png", "jpg", "jpeg", "gif", "webp"]


def unique(prefix: str) -> str:
    """``prefix`` and a marker of this run's own."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def marked_png(marker: str) -> bytes:
    """A valid PNG that carries ``marker`` in a text chunk, so the bytes the model is
    sent can be told apart from any other test's picture."""
    body = b"tEXt" + b"Comment\x00" + marker.encode()
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    plain = png()
    end = plain.rindex(b"IEND") - 4  # before the IEND chunk's length
    return plain[:end] + chunk + plain[end:]


def images_sent(model: Model) -> list[bytes]:
    """The pictures of every chat completion the model server received, decoded."""
    found: list[bytes] = []
    for request in model.recorded():
        body = request.get("body") or {}
        if not body.get("stream"):
            continue
        for message in body.get("messages") or []:
            content = message.get("content")
            for part in content if isinstance(content, list) else []:
                url = str((part.get("image_url") or {}).get("url") or "")
                if part.get("type") == "image_url" and url.startswith("data:"):
                    found.append(base64.b64decode(url.partition(",")[2]))
    return found


def saw_image(model: Model, marker: str) -> bool:
    return any(marker.encode() in data for data in images_sent(model))


def question_files(openwebui: RunningOpenWebUI, chat_id: str) -> list[list[dict[str, Any]]]:
    """The files on each question of the chat as the web UI shows it, oldest first."""
    history = history_of(fetch_chat(openwebui, chat_id))
    assert treecheck.problems(history) == [], history
    return [list(m.get("files") or []) for m in treecheck.branch(history)[::2]]


def latest_answer(openwebui: RunningOpenWebUI, chat_id: str) -> str:
    """The chat's newest answer as Open WebUI keeps it. (The model's words depend on
    what Open WebUI wrapped around the question, e.g. 0.12's ``<attached_files>``.)"""
    return treecheck.answer_text(treecheck.branch(history_of(fetch_chat(openwebui, chat_id)))[-1])


def in_context(model: Model, text: str) -> bool:
    """Whether ``text`` was in any request the model server received."""
    return any(text in json.dumps(r.get("body") or {}) for r in model.recorded())


@pytest.fixture
def refusing(openwebui: RunningOpenWebUI) -> Iterator[str]:
    """Open WebUI allows only ``ALLOWED`` extensions (an admin's setting) during the
    test, so a ``.exe`` is refused as the web UI's upload would be; restored after."""
    config = admin_request(openwebui, "GET", "/api/v1/retrieval/config").json()
    before = list(config.get("ALLOWED_FILE_EXTENSIONS") or [])
    update = {"ALLOWED_FILE_EXTENSIONS": ALLOWED}
    admin_request(openwebui, "POST", "/api/v1/retrieval/config/update", json=update)
    try:
        yield REFUSED
    finally:
        update = {"ALLOWED_FILE_EXTENSIONS": before}
        admin_request(openwebui, "POST", "/api/v1/retrieval/config/update", json=update)
