"""Files sent with a question, against real Open WebUI servers: what reaches the model
(the model server records its requests) and what the chat shows on the question."""

from __future__ import annotations

import asyncio
import json
import struct
import uuid
import zlib
from dataclasses import replace
from typing import Any

import pytest

from bridge.events import FileRef, PlatformEvent
from tests.contract.bridge_fixtures import (
    MODEL,
    BridgeFactory,
    RecordingReply,
    as_admin,
    event,
    fetch_chat,
    history_of,
    platform_of,
    regenerate,
    submit,
)
from tests.harness.model_server import RemoteModelServer, ThreadedModelServer
from tests.harness.openwebui import RunningOpenWebUI

pytestmark = pytest.mark.every_release

ModelServer = ThreadedModelServer | RemoteModelServer
BLIND = "blind-model"  # fake-model with vision switched off in Open WebUI


def png() -> bytes:
    """A valid 2x2 red PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def pdf(text: str) -> bytes:
    """A minimal valid one-page PDF whose text is ``text`` (offsets written exactly)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return pdf_of(objects)


def pdf_of(objects: list[bytes]) -> bytes:
    """A PDF file of ``objects`` (numbered from 1, the catalog first), its cross-reference
    table written with exact offsets."""
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


def with_files(e: PlatformEvent, *files: FileRef) -> PlatformEvent:
    return replace(e, files=files)


def requests_with(model_server: ModelServer, marker: str) -> list[dict[str, Any]]:
    """The model's requests (chats and tasks) whose messages mention ``marker``."""
    return [
        r["body"]
        for r in model_server.recorded()
        if marker in json.dumps((r.get("body") or {}).get("messages") or [])
    ]


def question_of(openwebui: RunningOpenWebUI, chat_id: str, text: str) -> dict[str, Any]:
    messages = history_of(fetch_chat(openwebui, chat_id))["messages"].values()
    [asked] = [m for m in messages if m.get("role") == "user" and text in str(m.get("content"))]
    return dict(asked)


async def ask_with(
    runtime: Any, e: PlatformEvent, served: dict[str, bytes]
) -> tuple[RecordingReply, Any]:
    platform_of(runtime).served.update(served)
    reply = RecordingReply()
    result = await (await submit(runtime, e, reply))
    return reply, result


async def test_a_png_reaches_the_model_as_image_input_and_shows_on_the_question(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory, model_server: ModelServer
) -> None:
    marker = f"picture-{uuid.uuid4().hex[:8]}"
    image = FileRef("P1", "shot.png", "image/png", len(png()))
    async with make_bridge() as runtime:
        e = with_files(event(f"what is in {marker}?", f"png-{marker}"), image)
        reply, result = await ask_with(runtime, e, {"P1": png()})
        # A follow-up still shows the model the picture asked about before (as the
        # web UI sends every question's images with the conversation).
        later, _ = await ask_with(runtime, event(f"and then {marker}", f"png-{marker}"), {})
    assert result.status.value == "done" and reply.final and later.final
    first, second = [b for b in requests_with(model_server, marker) if b.get("stream")]
    for body in (first, second):
        asked_first = f"what is in {marker}"
        [asked] = [
            m for m in body["messages"] if m["role"] == "user" and asked_first in json.dumps(m)
        ]
        parts = [p for p in asked["content"] if p.get("type") == "image_url"]
        assert [p["image_url"]["url"][:22] for p in parts] == ["data:image/png;base64,"]
    assert result.chat_id is not None
    [shown] = question_of(openwebui, result.chat_id, f"what is in {marker}")["files"]
    assert shown["type"] == "image" and shown["name"] == "shot.png"
    # An admin can open it: the file is Open WebUI's, with the bytes sent.
    stored = await as_admin(openwebui, "GET", f"/api/v1/files/{shown['id']}")
    assert stored["meta"]["name"] == "shot.png"


@pytest.mark.parametrize("kind", ["text", "pdf"])
async def test_a_document_reaches_the_models_context(
    openwebui: RunningOpenWebUI,
    make_bridge: BridgeFactory,
    model_server: ModelServer,
    kind: str,
) -> None:
    secret = f"LaunchCode{uuid.uuid4().hex[:8]}"
    if kind == "pdf":
        file, data = FileRef("D1", "plan.pdf", "application/pdf"), pdf(f"The code is {secret}")
    else:
        data = f"The code is {secret}\n".encode()
        file = FileRef("D1", "plan.txt", "text/plain", len(data))
    async with make_bridge() as runtime:
        e = with_files(event(f"what is the code? {kind}", f"doc-{secret}"), file)
        reply, result = await ask_with(runtime, e, {"D1": data})
    assert result.status.value == "done" and reply.final is not None
    assert not reply.final.startswith("_plan"), reply.final  # no note: it was read
    assert requests_with(model_server, secret), "the document's text never reached the model"
    assert result.chat_id is not None
    [shown] = question_of(openwebui, result.chat_id, "what is the code?")["files"]
    assert shown["type"] == "file" and shown["name"] == file.name


async def test_another_answer_reads_the_questions_files_again(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory, model_server: ModelServer
) -> None:
    secret = f"Regen{uuid.uuid4().hex[:8]}"
    data = f"The code is {secret}\n".encode()
    file = FileRef("D1", "plan.txt", "text/plain", len(data))
    async with make_bridge() as runtime:
        e = with_files(event("what is the code? again", f"regen-{secret}"), file)
        reply, result = await ask_with(runtime, e, {"D1": data})
        assert result.status.value == "done"
        before = len(requests_with(model_server, secret))
        acted = await regenerate(runtime, reply.message_id, f"ev-{secret}")
        assert acted.answer is not None
        assert (await acted.answer).status.value == "done"
        assert platform_of(runtime).downloads == ["D1"]  # read once, sent twice
    assert len(requests_with(model_server, secret)) > before


async def test_an_image_to_a_model_that_cannot_see_is_noted(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory, model_server: ModelServer
) -> None:
    await blind_model(openwebui)
    marker = f"blind-{uuid.uuid4().hex[:8]}"
    image = FileRef("P1", "shot.png", "image/png")
    async with make_bridge() as runtime:
        e = with_files(event(f"look {marker}", f"blind-{marker}", model=BLIND), image)
        reply, result = await ask_with(runtime, e, {"P1": png()})
        assert platform_of(runtime).downloads == []
    assert result.status.value == "done" and reply.final is not None
    assert reply.final.startswith(f"_shot.png was not read: {BLIND} cannot see images._\n\n")
    [body] = [b for b in requests_with(model_server, marker) if b.get("stream")]
    assert "image_url" not in json.dumps(body["messages"])


async def test_a_restart_between_upload_and_answer_uploads_nothing_twice(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    name = f"restart-{uuid.uuid4().hex[:8]}.txt"
    file = FileRef("R1", name, "text/plain")
    e = with_files(event("read it after a restart", f"restart-{name}"), file)
    async with make_bridge() as runtime:
        turns = runtime.bridge._turns  # the process dies just before the answer starts
        started = asyncio.Event()

        async def never(*args: Any) -> Any:
            started.set()
            await asyncio.Event().wait()

        turns._flow.start = never  # type: ignore[method-assign]
        platform_of(runtime).served[file.id] = b"remember me\n"
        pending = await submit(runtime, e, RecordingReply())
        await asyncio.wait_for(started.wait(), 60)
        await runtime.bridge.drain(0)
        assert not pending.done()
    assert await uploads_named(openwebui, name) == 1

    async with make_bridge() as runtime:
        platform = platform_of(runtime)
        platform.served[file.id] = b"remember me\n"
        assert await runtime.bridge.resume("test") == 1
        while not runtime.bridge.idle:
            await asyncio.sleep(0.05)
        assert platform.replies[e.message_id].final
        assert platform.downloads == []
    assert await uploads_named(openwebui, name) == 1


async def uploads_named(openwebui: RunningOpenWebUI, name: str) -> int:
    listed = await as_admin(openwebui, "GET", "/api/v1/files/")
    items = listed.get("items", listed) if isinstance(listed, dict) else listed
    return sum(1 for f in items if (f.get("meta") or {}).get("name") == name)


async def blind_model(openwebui: RunningOpenWebUI) -> None:
    """A workspace model over fake-model whose vision capability is off (as an admin
    switches it off in Workspace → Models); made once per server."""
    models = await as_admin(openwebui, "GET", "/api/models")
    if any(m.get("id") == BLIND for m in models.get("data", [])):
        return
    body = {
        "id": BLIND,
        "base_model_id": MODEL,
        "name": BLIND,
        "meta": {"capabilities": {"vision": False}},
        "params": {},
        "access_control": None,
        "access_grants": [{"principal_type": "user", "principal_id": "*", "permission": "read"}],
    }
    await as_admin(openwebui, "POST", "/api/v1/models/create", json=body)
