"""Files sent with a question, on the Open WebUI side: upload, wait until a document is
processed, and the item the chat keeps on the user message (the web UI's shape).

- Upload: ``POST /api/v1/files/`` (multipart ``file``). Images go up with
  ``?process=false`` as the web UI sends them; documents are processed (text
  extracted, embedded).
- 0.6.15 processes in the request and answers a failure with an ``error`` field;
  later releases process in the background: ``GET /api/v1/files/{id}/process/status``
  until ``completed`` or ``failed``. Asking before that gives the model nothing.
- Refusals: a type the admin does not allow (400), too large (413, from 0.10).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from bridge.errors import BridgeError, RequestRejected
from bridge.openwebui.client import OpenWebUIClient

log = logging.getLogger(__name__)

PROCESS_TIMEOUT = 120.0  # seconds a document may take to be processed
_POLL = (0.2, 0.5, 1.0)  # seconds between status reads, growing


class FileRefused(Exception):
    """Open WebUI will not take or read the file; ``reason`` is the note's phrase."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_image(mimetype: str) -> bool:
    """A picture the model sees as image input (the web UI's raster types)."""
    return mimetype.lower() in {"image/png", "image/jpeg", "image/gif", "image/webp"}


@dataclass(frozen=True)
class Uploaded:
    """A file in Open WebUI and the item the chat keeps for it."""

    id: str
    entry: dict[str, Any]

    @property
    def image(self) -> bool:
        return self.entry.get("type") == "image"


async def upload(
    client: OpenWebUIClient, name: str, mimetype: str, data: IO[bytes], *, image: bool
) -> dict[str, Any]:
    """The file object Open WebUI made of ``data``; raises ``FileRefused``."""

    def parts() -> dict[str, Any]:
        data.seek(0)
        return {"file": (name, data, mimetype or "application/octet-stream")}

    params = {"process": "false"} if image else None
    try:
        answer = await client.request("POST", "/api/v1/files/", params=params, files=parts)
    except RequestRejected as exc:
        raise FileRefused(_refusal(exc)) from exc
    if not isinstance(answer, dict) or not answer.get("id"):
        raise FileRefused("Open WebUI did not store it")
    if answer.get("error"):  # 0.6.15: processed in the request, failure said in the answer
        raise FileRefused("Open WebUI could not read it")
    return answer


def _refusal(exc: RequestRejected) -> str:
    if exc.status == 413:
        return "it is larger than Open WebUI accepts"
    text = str(exc).lower()
    if "not allowed" in text or "not supported" in text:
        return "Open WebUI does not accept this type of file"
    return "Open WebUI could not read it"


async def wait_processed(
    client: OpenWebUIClient,
    file_id: str,
    *,
    within: float = PROCESS_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Return once Open WebUI has processed the document; raise ``FileRefused`` when it
    failed or took longer than ``within`` seconds. A release without the status endpoint
    (0.6.15) processed it in the upload already."""
    server = client.server
    if server is not None and server.version_tuple < (0, 6, 26):
        return
    deadline = clock() + within
    attempt = 0
    while True:
        try:
            data = await client.request("GET", f"/api/v1/files/{file_id}/process/status")
        except RequestRejected as exc:
            if exc.status == 404 and "not found" not in str(exc).lower():
                return  # no such endpoint: processed in the upload
            raise
        status = str((data or {}).get("status") or "") if isinstance(data, dict) else ""
        if status in ("completed", ""):  # "": a file uploaded without processing
            return
        if status == "failed":
            log.info("Open WebUI could not process file %s: %s", file_id, data.get("error"))
            raise FileRefused("Open WebUI could not read it")
        if clock() >= deadline:
            raise FileRefused("Open WebUI took too long to read it")
        await asyncio.sleep(_POLL[min(attempt, len(_POLL) - 1)])
        attempt += 1


def chat_entry(client: OpenWebUIClient, stored: dict[str, Any], *, image: bool) -> dict[str, Any]:
    """The item the web UI keeps on ``user message.files`` (and sends in ``files``)."""
    file_id = str(stored["id"])
    meta = stored.get("meta") or {}
    name = str(meta.get("name") or stored.get("filename") or file_id)
    size = int(meta.get("size") or 0)
    content_type = str(meta.get("content_type") or "")
    if image:
        return {
            "type": "image",
            "id": file_id,
            "url": image_url(client, file_id),
            "name": name,
            "size": size,
            "content_type": content_type,
        }
    # The web UI keeps the server's file object; its extracted text stays in Open WebUI.
    data = {k: v for k, v in (stored.get("data") or {}).items() if k != "content"}
    return {
        "type": "file",
        "file": {**stored, "data": data},
        "id": file_id,
        "url": f"/api/v1/files/{file_id}",
        "name": name,
        "collection_name": str(meta.get("collection_name") or f"file-{file_id}"),
        "status": "uploaded",
        "size": size,
        "error": "",
        "itemId": str(uuid.uuid4()),
        "content_type": content_type,
    }


def image_url(client: OpenWebUIClient, file_id: str) -> str:
    """Where the chat points at an uploaded image: its id from 0.8.12, whose server turns
    ids into image input (as that web UI stores them); before, the content URL the
    web page opens (the bridge sends the picture itself: ``image_data_url``)."""
    server = client.server
    if server is None or server.version_tuple >= (0, 8, 12):
        return file_id
    return f"/api/v1/files/{file_id}/content"


async def image_data_url(client: OpenWebUIClient, entry: dict[str, Any]) -> str:
    """The picture as a data URL for a completion's ``image_url`` part (0.6.x: the
    server does not read file ids there). ``""`` when it is gone."""
    url = str(entry.get("url") or "")
    if url.startswith("data:"):
        return url
    file_id = str(entry.get("id") or "")
    try:
        data = await client.request("GET", f"/api/v1/files/{file_id}/content", raw=True)
    except BridgeError as exc:
        log.warning("image %s of an earlier question could not be read: %s", file_id, exc)
        return ""
    mimetype = str(entry.get("content_type") or "image/png")
    return f"data:{mimetype};base64,{base64.b64encode(bytes(data)).decode()}"


def vision(model: dict[str, Any] | None) -> bool:
    """Whether the model sees images, as the web UI decides (on unless switched off)."""
    capabilities = (((model or {}).get("info") or {}).get("meta") or {}).get("capabilities")
    if not isinstance(capabilities, dict):
        return True
    return capabilities.get("vision", True) is not False
