"""Slack's HTTP Events API endpoint (``POST /slack/events``): every request screened
before Bolt parses it.

Refused: while the adapter is not serving (starting, or stopping after ``SIGTERM``:
503, so Slack delivers the event again, to the next process), a body over ``MAX_BODY``
(413), an unsigned, badly signed or stale request (401), a body that is not UTF-8 JSON
(400). Nothing unsigned reaches a parser or the log. Slack's retry headers
(``X-Slack-Retry-Num``) pass through to Bolt untouched: duplicates stop at the core's
event ledger.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
MAX_AGE = 300  # seconds a signed request stays valid (Slack's own rule against replays)
MAX_BODY = 1024 * 1024  # bytes; Slack's event payloads are a few kilobytes


class Rejected(Exception):
    """An events request refused before Bolt sees it; the message names why (no secret)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class EventsEndpoint:
    """The aiohttp handler of ``POST /slack/events`` in front of a Bolt app.

    ``serving`` says whether events may be taken now; None when they may, else why not
    ("starting", "stopping")."""

    def __init__(self, app: AsyncApp, secret: str, serving: Callable[[], str | None]) -> None:
        self._app = app
        self._secret = secret
        self._serving = serving

    async def handle(self, request: web.Request) -> web.Response:
        not_serving = self._serving()
        if not_serving is not None:
            # Mounted before start(), or shutting down: Slack delivers it again.
            return web.json_response({"ok": False, "error": not_serving}, status=503)
        try:
            body = await read_capped(request, MAX_BODY)
            text = screen(body, request.headers, self._secret)
        except Rejected as rejected:
            log.info("Slack events request rejected (%d): %s", rejected.status, rejected)
            return web.json_response({"error": str(rejected)}, status=rejected.status)
        bolt = AsyncBoltRequest(
            body=text,
            query=request.query_string,
            headers=request.headers,  # type: ignore[arg-type]
        )
        return await to_aiohttp_response(await self._app.async_dispatch(bolt))


async def read_capped(request: web.Request, limit: int) -> bytes:
    """The request body, refused (413) past ``limit`` bytes without reading it all."""
    if request.content_length is not None and request.content_length > limit:
        raise Rejected(413, "body too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, "body too large")
        chunks.append(chunk)
    return b"".join(chunks)


def screen(
    body: bytes, headers: Mapping[str, str], secret: str, *, now: float | None = None
) -> str:
    """The body as text if Slack signed it lately and it is a JSON object, else
    ``Rejected``. The signature is checked on the raw bytes, before any parsing."""
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise Rejected(401, "no valid timestamp")
    if abs((time.time() if now is None else now) - int(timestamp)) > MAX_AGE:
        raise Rejected(401, "stale timestamp")
    # Slack's recipe on the raw bytes (slack_sdk's SignatureVerifier decodes the body
    # first and raises on bytes that are not UTF-8, before knowing who sent them).
    signed = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    given = headers.get("X-Slack-Signature", "").encode("utf-8", "replace")
    if not secret or not hmac.compare_digest(expected.encode(), given):
        raise Rejected(401, "bad signature")
    try:
        text = body.decode("utf-8")
        payload = json.loads(text)
    except UnicodeDecodeError:
        raise Rejected(400, "body is not UTF-8") from None
    except (ValueError, RecursionError):
        raise Rejected(400, "body is not JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("event", {}), dict):
        raise Rejected(400, "not an Events API payload")
    return text
