"""The fake Discord's attachment CDN: files people and the bot attach, served by URL.

Discord's attachment object (docs: Message resource, Attachment structure) carries
``id``, ``filename``, ``size``, ``url``, ``proxy_url`` and ``content_type``. Its CDN URLs
are signed (docs: Reference, Signed Attachment CDN URLs): ``?ex=<hex expiry>&is=<hex
issued>&hm=<signature>``; a link past ``ex`` no longer works and a fresh one comes with
each fetch of the message. Here the links point at the fake's own server
(``/attachments/{channel}/{id}/{filename}``, the proxy under ``/media``), are signed
when a message is shaped, and answer as the CDN does (the answers are unverified in
detail): an expired link 404 "This content is no longer available.", a bad signature
403, an attachment whose message was deleted (or that was removed by an edit) 404.
Bytes go out in ``CHUNK`` pieces, so a client reading as they arrive sees several.

Limits on uploads (docs: Uploading Files): at most ``MAX_FILES`` attachments on a message,
and the files of one request within the guild's upload limit (``attachment_size_limit``,
10 MiB for a guild without boosts and in DMs); over it Discord answers 413 with code
40005 "Request entity too large". Whether Discord counts each file or the request's sum
is not published: the fake counts the sum (the stricter).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JSON = dict[str, Any]

MAX_FILES = 10
DEFAULT_SIZE_LIMIT = 10 * 1024 * 1024  # bytes; discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES
LINK_TTL = 24 * 3600.0  # seconds a signed link works (unverified; "about a day")
CHUNK = 64 * 1024
EXPIRED_TEXT = "This content is no longer available."


@dataclass(frozen=True)
class FakeFile:
    """A file a person attaches (``FakeDiscord.user_says(files=...)``)."""

    name: str
    data: bytes
    content_type: str = "application/octet-stream"


@dataclass
class Blob:
    id: str
    channel_id: str
    filename: str
    content_type: str
    data: bytes
    gone: bool = False  # its message was deleted, or an edit removed it


@dataclass
class Cdn:
    """Stored attachment bytes and their signed links."""

    base_url: str = ""
    secret: bytes = b"fake-cdn-secret"
    # Seconds added to the clock the links are signed and checked by: ``expire_links``
    # moves it past every link handed out so far.
    skew: float = 0.0
    blobs: dict[str, Blob] = field(default_factory=dict)
    downloads: list[str] = field(default_factory=list)  # attachment ids served, in order

    def now(self) -> float:
        return time.time() + self.skew

    def store(
        self, aid: str, channel_id: str, filename: str, data: bytes, content_type: str
    ) -> JSON:
        """Keep ``data`` and return the attachment object as stored (links unsigned)."""
        self.blobs[aid] = Blob(aid, channel_id, filename, content_type, data)
        return {
            "id": aid,
            "filename": filename,
            "size": len(data),
            "content_type": content_type,
        }

    def signed(self, attachment: JSON) -> JSON:
        """``attachment`` as a message shape carries it: with fresh signed links."""
        aid = str(attachment["id"])
        blob = self.blobs.get(aid)
        if blob is None:
            return dict(attachment)
        path = f"/attachments/{blob.channel_id}/{aid}/{blob.filename}"
        issued = int(self.now())
        expires = issued + int(LINK_TTL)
        query = f"ex={expires:x}&is={issued:x}&hm={self._sign(path, expires, issued)}&"
        return {
            **attachment,
            "url": f"{self.base_url}{path}?{query}",
            "proxy_url": f"{self.base_url}/media{path}?{query}",
        }

    def expire_links(self) -> None:
        """Every link handed out so far is past its expiry."""
        self.skew += LINK_TTL + 1

    def data(self, aid: str) -> bytes:
        return self.blobs[aid].data

    def forget(self, aids: list[str]) -> None:
        for aid in aids:
            if aid in self.blobs:
                self.blobs[aid].gone = True

    def _sign(self, path: str, expires: int, issued: int) -> str:
        text = f"{path}|{expires:x}|{issued:x}".encode()
        return hmac.new(self.secret, text, hashlib.sha256).hexdigest()

    async def serve(self, request: web.Request) -> web.StreamResponse:
        path = request.path.removeprefix("/media")
        aid = request.match_info["attachment_id"]
        blob = self.blobs.get(aid)
        if (
            blob is None
            or blob.gone
            or path != f"/attachments/{blob.channel_id}/{aid}/{blob.filename}"
        ):
            return web.Response(status=404, text="Not Found")
        try:
            expires = int(request.query.get("ex", ""), 16)
            issued = int(request.query.get("is", ""), 16)
        except ValueError:
            return web.Response(status=403, text="Forbidden")
        if not hmac.compare_digest(self._sign(path, expires, issued), request.query.get("hm", "")):
            return web.Response(status=403, text="Forbidden")
        if expires < self.now():
            return web.Response(status=404, text=EXPIRED_TEXT)
        self.downloads.append(aid)
        response = web.StreamResponse(
            headers={"Content-Type": blob.content_type, "Content-Length": str(len(blob.data))}
        )
        await response.prepare(request)
        for start in range(0, len(blob.data), CHUNK):
            await response.write(blob.data[start : start + CHUNK])
        await response.write_eof()
        return response


def too_many_files() -> JSON:
    """The 400 errors for a message with more than ``MAX_FILES`` attachments (unverified)."""
    return {
        "attachments": {
            "_errors": [
                {
                    "code": "BASE_TYPE_MAX_LENGTH",
                    "message": f"Must be {MAX_FILES} or fewer in length.",
                }
            ]
        }
    }
