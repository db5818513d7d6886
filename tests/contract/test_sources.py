"""Sources under answers, against real Open WebUI servers: a knowledge collection
with two documents on a channel; the footer names both, numbered as Open WebUI
numbered them for the model (its ``<source id="n">`` tags, which its ``[n]``
markers cite)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.runtime import open_runtime
from bridge.channels import load_channels
from tests.contract.bridge_fixtures import admin_request, ask, fetch_chat, settings_for
from tests.harness.model_server import RemoteModelServer, ThreadedModelServer
from tests.harness.openwebui import RunningOpenWebUI

pytestmark = pytest.mark.every_release

CHANNEL = "c"  # the channel of every test event (bridge_fixtures.event)


@dataclass(frozen=True)
class Collection:
    id: str
    names: dict[str, str]  # document name -> a sentence only that document holds


def _upload(server: RunningOpenWebUI, name: str, text: str) -> str:
    file = admin_request(
        server,
        "POST",
        "/api/v1/files/",
        files={"file": (name, text.encode(), "text/plain")},
        params={"process_in_background": "false"},
    ).json()
    # From 0.6.26 documents are processed in the background: wait until done.
    deadline = time.monotonic() + 60
    while (file.get("data") or {}).get("status") not in (None, "completed"):
        assert time.monotonic() < deadline, f"{name} was not processed: {file}"
        time.sleep(0.3)
        status = admin_request(server, "GET", f"/api/v1/files/{file['id']}/process/status")
        file = {"data": status.json()} | {"id": file["id"]}
    return str(file["id"])


@pytest.fixture
async def collection(openwebui: RunningOpenWebUI) -> AsyncIterator[Collection]:
    tag = uuid.uuid4().hex[:8]
    names = {
        f"alpha-guide-{tag}.md": f"The alpha guide {tag} says the sky is teal.",
        f"beta-faq-{tag}.txt": f"The beta FAQ {tag} says water is dry.",
    }
    file_ids = [
        await asyncio.to_thread(_upload, openwebui, name, text) for name, text in names.items()
    ]
    made = admin_request(
        openwebui,
        "POST",
        "/api/v1/knowledge/create",
        json={"name": f"Handbook {tag}", "description": "two documents"},
    ).json()
    for file_id in file_ids:
        admin_request(
            openwebui, "POST", f"/api/v1/knowledge/{made['id']}/file/add", json={"file_id": file_id}
        )
    yield Collection(str(made["id"]), names)
    admin_request(openwebui, "DELETE", f"/api/v1/knowledge/{made['id']}/delete")


def context_numbers(recorded: list[dict[str, Any]], marker: str) -> dict[int, str]:
    """The ``<source id="n">`` tags of the chat completion that asked ``marker``: n ->
    the document text the model read under that number."""
    # The RAG template starts "### Task:", so the model server files it as a task.
    for request in recorded:
        messages = (request.get("body") or {}).get("messages") or []
        text = "\n".join(str(m.get("content")) for m in messages)
        found = re.findall(r'<source id="(\d+)"[^>]*>((?:(?!<source\b).)*?)</source>', text, re.S)
        if marker in text and found:  # background tasks carry the question, no sources
            return {int(n): body for n, body in found}
    raise AssertionError(f"no completion with sources asked {marker!r}")


async def answer_with_sources(
    openwebui: RunningOpenWebUI, tmp_path: Path, rules: dict[str, Any], question: str
) -> tuple[str, str]:
    settings = settings_for(openwebui, tmp_path / "bridge.db")
    channels = load_channels(settings, {"channels": [{"id": CHANNEL, **rules}]})
    async with open_runtime(settings, channels=channels) as runtime:
        reply, result = await ask(runtime, question, f"sources-{uuid.uuid4().hex[:6]}")
    assert result.status.value == "done", result.error
    assert reply.final is not None
    return reply.final, str(result.chat_id)


async def test_the_footer_names_both_documents_with_the_models_numbers(
    openwebui: RunningOpenWebUI,
    collection: Collection,
    model_server: ThreadedModelServer | RemoteModelServer,
    tmp_path: Path,
) -> None:
    marker = f"q-{uuid.uuid4().hex[:8]}"
    final, chat_id = await answer_with_sources(
        openwebui,
        tmp_path,
        {"knowledge_ids": [collection.id]},
        f"What do they say? {marker} [[cite]]",
    )
    footer = final.rsplit("\n\n", 1)[-1]
    entries = dict(re.findall(r"\[(\d+)\] ([^·]+?)(?: · |$)", footer))
    assert sorted(entries.values()) == sorted(collection.names), footer
    # The model read each document under the number the footer gives it.
    context = context_numbers(model_server.recorded(), marker)
    for number, name in entries.items():
        assert collection.names[name] in context[int(number)], (number, name, context)
    # The model's own markers: each sentence it cites is the document the footer names
    # under that number. (A shared model server started before ``[[cite]]`` existed
    # answers without markers; one this run started always cites.)
    if isinstance(model_server, ThreadedModelServer) or re.search(r" \[\d\]\.", final):
        for number, name in entries.items():
            assert f"{collection.names[name].rstrip('.')} [{number}]." in final, final
    # The footer is the thread's only addition: the Open WebUI chat keeps the answer alone.
    stored = [
        m["content"] for m in fetch_chat(openwebui, chat_id)["chat"]["history"]["messages"].values()
    ]
    assert not any("Sources:" in str(content) for content in stored)


async def test_a_channel_with_sources_off_shows_none(
    openwebui: RunningOpenWebUI, collection: Collection, tmp_path: Path
) -> None:
    final, _ = await answer_with_sources(
        openwebui,
        tmp_path,
        {"knowledge_ids": [collection.id], "show_sources": False},
        "What do they say?",
    )
    assert "Sources:" not in final
    assert not any(name in final for name in collection.names)
