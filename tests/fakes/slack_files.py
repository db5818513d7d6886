"""Files on the fake Slack: the file objects events carry, the bytes behind
``url_private_download`` (only for the bot's token), ``files.info`` and uploads
(``files.getUploadURLExternal`` → POST the bytes → ``files.completeUploadExternal``).

From Slack's docs (https://docs.slack.dev/reference/objects/file-object,
https://docs.slack.dev/messaging/working-with-files):
- ``url_private`` / ``url_private_download`` need ``Authorization: Bearer <token>`` of a
  token with ``files:read``. Without it Slack does not answer 401: it sends the browser
  to its sign-in page, so a client gets an HTML page instead of the file (the reason
  so many bots save a login page as "image.png"). The fake redirects to an HTML page.
- ``mode``: "hosted", "external" (``is_external``: the bytes live elsewhere, e.g. Google
  Drive), "snippet", "post", "hidden_by_limit" (a free workspace's history limit hides
  it) and "tombstone" (deleted; the object keeps its id only).
- Slack Connect: in a channel shared with another organisation an event may carry only
  ``{"id", "mode": "file_access", "file_access": "check_file_info"}``; ``files.info``
  gives the details if the bot may see the file.
- Unverified: what a deleted file's URL answers (the fake: 404 with an HTML page), and the
  error ``files.completeUploadExternal`` gives for a file whose bytes never arrived
  (the fake: ``file_upload_not_completed`` is a guess, see ``UPLOAD_MISSING``).
"""

from __future__ import annotations

import asyncio
import mimetypes
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web

JSON = dict[str, Any]

LOGIN_PAGE = (
    "<!DOCTYPE html><html><head><title>Sign in | Slack</title></head>"
    "<body><h1>Sign in to Fake Team</h1></body></html>"
)
UPLOAD_MISSING = "file_upload_not_completed"  # unverified error name
CHUNK = 16 * 1024  # bytes the fake writes at a time when serving a file


@dataclass
class StoredFile:
    """A file Slack holds. ``mode``: as Slack says it (see the module doc). ``connect``:
    shared from another organisation (events carry only ``check_file_info``);
    ``info_refused``: ``files.info`` will not resolve it either. ``removed``: deleted or
    expired since the event: its URL answers 404. ``hold``: serving pauses after the first
    chunk until the event is set (to see a download arrive in pieces)."""

    id: str
    name: str
    data: bytes
    mimetype: str
    filetype: str
    user: str
    title: str = ""
    mode: str = "hosted"
    connect: bool = False
    info_refused: bool = False
    removed: bool = False
    forbidden: bool = False  # its URL answers 403 (unverified when Slack does)
    hold: asyncio.Event | None = None
    served_chunks: int = 0  # chunks written by the last download

    @property
    def external(self) -> bool:
        return self.mode == "external"


@dataclass
class _Pending:
    file_id: str
    filename: str
    length: int
    alt_txt: str
    data: bytes | None = None


@dataclass
class FileStore:
    """The workspace's files; ``base`` is the server's http://host:port."""

    team: str
    base: str = ""
    files: dict[str, StoredFile] = field(default_factory=dict)
    downloads: list[tuple[str, bool]] = field(default_factory=list)  # (file id, authorised)
    _uploads: dict[str, _Pending] = field(default_factory=dict)  # by upload URL key

    def add(
        self,
        name: str,
        data: bytes | None = None,
        *,
        mimetype: str | None = None,
        user: str = "U1",
        **options: Any,
    ) -> StoredFile:
        kind = mimetype or mimetypes.guess_type(name)[0] or "application/octet-stream"
        stored = StoredFile(
            id=f"F{uuid.uuid4().hex[:10].upper()}",
            name=name,
            data=data if data is not None else f"contents of {name}".encode(),
            mimetype=kind,
            filetype=name.rpartition(".")[2].lower() if "." in name else "binary",
            user=user,
            title=options.pop("title", name),
            **options,
        )
        self.files[stored.id] = stored
        return stored

    # -- file objects --------------------------------------------------------------

    def shape(self, stored: StoredFile) -> JSON:
        """The whole file object (files.info, messages the bot reads back)."""
        if stored.mode == "tombstone":
            return {"id": stored.id, "mode": "tombstone"}
        shape: JSON = {
            "id": stored.id,
            "created": 1_700_000_000,
            "timestamp": 1_700_000_000,
            "name": stored.name,
            "title": stored.title,
            "mimetype": stored.mimetype,
            "filetype": stored.filetype,
            "pretty_type": stored.filetype.upper(),
            "user": stored.user,
            "user_team": self.team,
            "editable": False,
            "size": len(stored.data),
            "mode": stored.mode,
            "is_external": stored.external,
            "external_type": "gdrive" if stored.external else "",
            "is_public": True,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"{self.base}/files-pri/{self.team}-{stored.id}/{quote(stored.name)}",
            "url_private_download": (
                f"{self.base}/files-pri/{self.team}-{stored.id}/download/{quote(stored.name)}"
            ),
            "permalink": f"{self.base}/files/{stored.user}/{stored.id}/{quote(stored.name)}",
        }
        if stored.external:
            shape["url_private"] = shape["url_private_download"] = (
                f"https://drive.example.com/{stored.id}"
            )
        return shape

    def event_shape(self, stored: StoredFile) -> JSON:
        """The file object as a message event carries it."""
        if stored.connect:
            return {
                "id": stored.id,
                "mode": "file_access",
                "file_access": "check_file_info",
                "created": 0,
                "timestamp": 0,
                "user": "",
            }
        return self.shape(stored)

    def info(self, file_id: str) -> JSON:
        """``files.info``: the object, or ``file_not_found`` (deleted, not shared with us)."""
        stored = self.files.get(file_id)
        if stored is None or stored.removed or stored.info_refused:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "file": self.shape(stored)}

    # -- serving the bytes ----------------------------------------------------------------

    async def serve(self, request: web.Request, authorised: bool) -> web.StreamResponse:
        key = request.match_info["key"]
        stored = self.files.get(key.rpartition("-")[2])
        self.downloads.append((stored.id if stored else key, authorised))
        if not authorised:
            # Slack sends a browser without the token to sign in: an HTML page, not the file.
            raise web.HTTPFound(f"/signin?redir={quote(request.path)}")
        if stored is None or stored.removed or stored.mode in ("tombstone", "hidden_by_limit"):
            return web.Response(
                status=404,
                text="<html><body>File not found</body></html>",
                content_type="text/html",
            )
        if stored.forbidden:
            return web.Response(status=403, text="Forbidden")
        response = web.StreamResponse(
            headers={
                "Content-Type": stored.mimetype,
                "Content-Length": str(len(stored.data)),
                "Content-Disposition": f'attachment; filename="{stored.name}"',
            }
        )
        await response.prepare(request)
        stored.served_chunks = 0
        for start in range(0, len(stored.data), CHUNK):
            await response.write(stored.data[start : start + CHUNK])
            stored.served_chunks += 1
            if start == 0 and stored.hold is not None:
                await stored.hold.wait()
        await response.write_eof()
        return response

    @staticmethod
    async def sign_in(request: web.Request) -> web.Response:
        return web.Response(text=LOGIN_PAGE, content_type="text/html")

    # -- uploads ---------------------------------------------------------------------------

    def upload_url(self, params: JSON) -> JSON:
        """``files.getUploadURLExternal``: ``filename`` and ``length`` are required."""
        filename = str(params.get("filename") or "")
        length = str(params.get("length") or "")
        if not filename or not length.isdigit() or int(length) <= 0:
            return {"ok": False, "error": "invalid_arguments"}
        key = uuid.uuid4().hex
        file_id = f"F{uuid.uuid4().hex[:10].upper()}"
        alt = str(params.get("alt_txt") or params.get("alt_text") or "")
        self._uploads[key] = _Pending(file_id, filename, int(length), alt)
        return {"ok": True, "upload_url": f"{self.base}/upload/v1/{key}", "file_id": file_id}

    async def receive(self, request: web.Request) -> web.Response:
        """The POST of the bytes to the upload URL (raw body, or a multipart ``file``)."""
        pending = self._uploads.get(request.match_info["key"])
        if pending is None:
            return web.Response(status=404, text="not found")
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            part = form.get("file") or form.get("filename")
            data = part.file.read() if isinstance(part, web.FileField) else b""
        else:
            data = await request.read()
        pending.data = data
        return web.Response(text=f"OK - {len(data)}")

    def complete(self, params: JSON, bot_user: str) -> tuple[JSON, list[StoredFile]]:
        """``files.completeUploadExternal``: the uploaded files, to be shared by the caller."""
        items = params.get("files")
        if not isinstance(items, list) or not items:
            return {"ok": False, "error": "invalid_arguments"}, []
        done: list[StoredFile] = []
        for item in items:
            pending = next((p for p in self._uploads.values() if p.file_id == item.get("id")), None)
            if pending is None:
                return {"ok": False, "error": "file_not_found"}, []
            if pending.data is None:
                return {"ok": False, "error": UPLOAD_MISSING}, []
            stored = StoredFile(
                id=pending.file_id,
                name=pending.filename,
                data=pending.data,
                mimetype=mimetypes.guess_type(pending.filename)[0] or "application/octet-stream",
                filetype=pending.filename.rpartition(".")[2].lower(),
                user=bot_user,
                title=str(item.get("title") or pending.filename),
            )
            done.append(stored)
        for stored in done:
            self.files[stored.id] = stored
            self._uploads = {k: p for k, p in self._uploads.items() if p.file_id != stored.id}
        return {"ok": True, "files": [{"id": f.id, "title": f.title} for f in done]}, done
