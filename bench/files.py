"""Files sent with a question, against real Open WebUI servers.

For each release: time from question to first text with a 5 MB PDF and with a 2 MB
image (the upload and Open WebUI's processing shown apart), Open WebUI requests per
turn (a follow-up) without files, with a text file and with an image, and the peak
memory (RSS) of a process while it downloads a 20 MB file and uploads it.

Usage:  .venv/bin/python -m bench.files --state .test-artifacts/all.json [--version 0.12.4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from adapters.runtime import Runtime, open_runtime
from bench.requests import Recorder
from bench.servers import bench_servers
from bridge.attachments import Attachments, FileBounds
from bridge.events import FileRef
from tests.contract.bridge_fixtures import (
    RecordingReply,
    event,
    platform_of,
    settings_for,
    submit,
)
from tests.contract.test_files import pdf_of, png
from tests.harness.openwebui import VERSIONS, RunningOpenWebUI

MB = 1024 * 1024


def big_pdf(size: int) -> bytes:
    """A valid PDF of about ``size`` bytes: pages of text."""
    line = b"(The quarterly figures are in line with the plan and nothing else.) Tj T* "
    page_text = b"BT /F1 10 Tf 12 TL 40 800 Td " + line * 600 + b"ET"
    pages = max(1, size // (len(page_text) + 200))
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",  # the page tree, once the pages are numbered
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids = []
    for _ in range(pages):
        page_no, content_no = len(objects) + 1, len(objects) + 2
        kids.append(b"%d 0 R" % page_no)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R"
            b" /Resources << /Font << /F1 3 0 R >> >> >>" % content_no
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(page_text) + page_text + b"\nendstream")
    objects[1] = b"<< /Type /Pages /Kids [" + b" ".join(kids) + b"] /Count %d >>" % pages
    return pdf_of(objects)


def noisy_png(size: int) -> bytes:
    """A valid PNG of about ``size`` bytes (random pixels do not compress)."""
    import struct

    side = int((size / 3) ** 0.5)
    raw = b"".join(b"\x00" + os.urandom(side * 3) for _ in range(side))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 1))
        + chunk(b"IEND", b"")
    )


class Timed:
    """When uploads and processing-status reads of the bridge's client ran."""

    def __init__(self, runtime: Runtime) -> None:
        self.spans: list[tuple[str, float, float]] = []
        send = runtime.client.request

        async def request(method: str, path: str, **kwargs: Any) -> Any:
            start = time.monotonic()
            try:
                return await send(method, path, **kwargs)
            finally:
                kind = "upload" if path == "/api/v1/files/" else ""
                kind = "status" if path.endswith("/process/status") else kind
                if kind:
                    self.spans.append((kind, start, time.monotonic()))

        runtime.client.request = request  # type: ignore[method-assign]


async def first_text(
    runtime: Runtime, timed: Timed, file: FileRef, data: bytes
) -> tuple[float, float, float]:
    """(upload s, processing s, question → first text s) for one question; the last is
    negative (the time to the failure) when no text came."""
    platform_of(runtime).served[file.id] = data
    timed.spans.clear()
    reply = RecordingReply()
    asked = replace(event("what does it say?", f"bench-{uuid.uuid4().hex[:8]}"), files=(file,))
    start = time.monotonic()
    await (await submit(runtime, asked, reply))
    uploads = [s for s in timed.spans if s[0] == "upload"]
    statuses = [s for s in timed.spans if s[0] == "status"]
    upload = sum(end - begin for _, begin, end in uploads)
    processing = (statuses[-1][2] - uploads[-1][2]) if statuses and uploads else 0.0
    if reply.first_text_at is None:  # e.g. the model server refused a request this big
        return upload, processing, -(time.monotonic() - start)
    return upload, processing, reply.first_text_at - start


async def requests_per_turn(runtime: Runtime) -> dict[str, int]:
    recorder = Recorder()
    recorder.install(runtime)
    thread = f"bench-{uuid.uuid4().hex[:8]}"
    platform = platform_of(runtime)
    platform.served.update({"T": b"some notes\n", "I": png()})
    counts = {}
    await (await submit(runtime, event("first [[words=5]]", thread), RecordingReply()))
    recorder.take()
    for label, files in (
        ("no file", ()),
        ("text file", (FileRef(f"T{thread}", "notes.txt", "text/plain"),)),
        ("image", (FileRef(f"I{thread}", "shot.png", "image/png"),)),
    ):
        for ref in files:
            platform.served[ref.id] = platform.served[ref.id[0]]
        asked = replace(event(f"again [[words=5]] {label}", thread), files=files)
        await (await submit(runtime, asked, RecordingReply()))
        counts[label] = len(recorder.take())
    return counts


async def measure(server: RunningOpenWebUI) -> None:
    pdf, image = big_pdf(5 * MB), noisy_png(2 * MB)
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(server, Path(tmp) / "bench.db", "events")
        async with open_runtime(settings) as runtime:
            counts = await requests_per_turn(runtime)
            timed = Timed(runtime)
            for label, ref, data in (
                ("5 MB PDF", FileRef("pdf", "report.pdf", "application/pdf"), pdf),
                ("2 MB PNG", FileRef("png", "photo.png", "image/png"), image),
            ):
                for run in range(3):
                    upload, processing, shown = await first_text(
                        runtime, timed, replace(ref, id=f"{ref.id}{run}"), data
                    )
                    ended = (
                        f"first text after {shown:.2f} s"
                        if shown >= 0
                        else f"no text: the turn failed after {-shown:.2f} s"
                    )
                    print(
                        f"{server.version:<8} {label} run {run + 1}: upload {upload:.2f} s,"
                        f" processing {processing:.2f} s, {ended}"
                    )
    print(f"{server.version:<8} Open WebUI requests per follow-up turn: {counts}")


def memory(server_state: Path, version: str) -> None:
    """Peak RSS of a fresh process downloading 20 MB in 64 KiB chunks and uploading it."""
    code = (
        "import asyncio,sys;from bench.files import _download_20mb;"
        f"asyncio.run(_download_20mb({str(server_state)!r}, {version!r}))"
    )
    for run in range(3):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        print(f"{version:<8} 20 MB download + upload run {run + 1}: {out.strip()}")


class _Stream:
    """A platform whose download makes its bytes as it goes (none held)."""

    name = "test"

    def __init__(self, size: int) -> None:
        self.size = size

    async def download(self, file: FileRef) -> AsyncIterator[bytes]:
        chunk = b"x" * 65536
        for _ in range(self.size // len(chunk)):
            yield chunk


async def _download_20mb(state: str, version: str) -> None:
    with bench_servers(Path(state), (version,)) as pool:
        server = pool.get(version)
        with tempfile.TemporaryDirectory() as tmp:
            settings = settings_for(server, Path(tmp) / "m.db", "polling")
            async with open_runtime(settings) as runtime:
                before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                files = Attachments(runtime.client, runtime.store, FileBounds(max_file_mb=21))
                conversation = (
                    await runtime.store.enqueue_turn(
                        _new_turn(f"mem-{uuid.uuid4().hex[:8]}")  # a thread to dedupe in
                    )
                ).conversation_id  # type: ignore[union-attr]
                ref = FileRef("big", "big.log", "text/plain")
                await files.gather(_Stream(20 * MB), conversation, (ref,), "fake-model", print)  # type: ignore[arg-type]
                after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS {after / 1024:.0f} MB (before the file {before / 1024:.0f} MB)")


def _new_turn(thread: str) -> Any:
    from bridge.events import ThreadKey
    from bridge.store import NewTurn

    return NewTurn(
        key=ThreadKey("test", "w", "c", thread),
        event_id=thread,
        platform_message_id=thread,
        sort_key="",
        event="{}",
        model="fake-model",
        user_message_id=str(uuid.uuid4()),
        assistant_message_id=str(uuid.uuid4()),
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--version", action="append", choices=VERSIONS)
    args = parser.parse_args()
    versions = tuple(args.version or VERSIONS)
    with bench_servers(args.state, versions) as pool:
        for version in versions:
            await measure(pool.get(version))
    for version in versions:
        memory(args.state, version)


if __name__ == "__main__":
    asyncio.run(main())
