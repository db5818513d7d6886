"""Files on Slack: the ``files`` of a message as ``FileRef``s, their bytes fetched with
the bot token, and files an answer brings uploaded into its thread.

Slack's file objects (https://docs.slack.dev/reference/objects/file-object) say when
a file cannot be read before anyone tries: ``mode`` "tombstone" (deleted),
"hidden_by_limit" (a free workspace's history limit), ``is_external`` (the bytes live
in another service). In a Slack Connect channel an event may carry only the file's id
and ``file_access: check_file_info``: ``files.info`` tells the rest, or refuses.

``url_private_download`` needs ``Authorization: Bearer <bot token>`` with ``files:read``.
Without it Slack does not answer 401 but sends its sign-in page: an HTML answer to a
file that is not HTML is that page. The token only goes to Slack's own hosts (aiohttp
drops it when a redirect leaves the host) and never into a log or an error.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.calls import CALL_ERRORS, describe
from adapters.slack.client import PLATFORM, SlackHttp
from bridge import metrics
from bridge.errors import FileUnavailable, PlatformFailed
from bridge.events import FileRef
from bridge.reply import OutFile

log = logging.getLogger(__name__)

CHUNK = 64 * 1024  # bytes handed on at a time while downloading
# A download may take long (a 20 MB file on a slow link) but must keep moving.
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30)
DOWNLOAD_METHOD = "files.download"  # its name in /metrics

# What the thread's note says (after "could not read <name>: ").
DELETED = "it was deleted in Slack"
HIDDEN = "Slack hides it under the workspace's message history limit"
EXTERNAL = "it is stored outside Slack"
CONNECT = "it was shared from another organisation and Slack does not let the bot read it"
NO_LINK = "Slack gave no link to it"
GONE = "Slack no longer has it (deleted or expired)"
NOT_ALLOWED = "Slack did not let the bot read it (the app needs the files:read scope)"
FORBIDDEN = "Slack did not let the bot read it"
FAILED = "the download from Slack failed"
NOT_SLACK = "its link does not point to Slack"


def file_refs(files: Any) -> tuple[FileRef, ...]:
    """The ``files`` of a message event, in order (anything not a file object skipped)."""
    if not isinstance(files, list):
        return ()
    return tuple(file_ref(f) for f in files if isinstance(f, dict) and f.get("id"))


def file_ref(obj: dict[str, Any]) -> FileRef:
    """A Slack file object as the core's ``FileRef``. A Slack Connect file that only
    says ``check_file_info`` comes back without name or link (``unresolved``)."""
    file_id = str(obj["id"])
    name = str(obj.get("name") or obj.get("title") or "")
    mode = obj.get("mode")
    problem = ""
    if mode == "tombstone":
        problem = DELETED
    elif mode == "hidden_by_limit":
        problem = HIDDEN
    elif obj.get("is_external") or mode == "external":
        problem = EXTERNAL
    url = str(obj.get("url_private_download") or obj.get("url_private") or "")
    if not problem and not url and obj.get("file_access") != "check_file_info":
        problem = NO_LINK
    size = obj.get("size")
    return FileRef(
        id=file_id,
        name=name or file_id,
        mimetype=str(obj.get("mimetype") or ""),
        size=size if isinstance(size, int) and size > 0 else 0,
        url="" if problem else url,
        problem=problem,
    )


def unresolved(file: FileRef) -> bool:
    """Slack said only ``check_file_info``: ``files.info`` must tell the rest."""
    return not file.url and not file.problem


class SlackFiles:
    """Reads people's files for the core, with the bot token, on the adapter's session."""

    def __init__(self, client: AsyncWebClient, http: SlackHttp, api_url: str) -> None:
        self._client = client
        self._http = http
        host = urlsplit(api_url).hostname or ""
        # Slack's hosts: the API's domain and its subdomains (files.slack.com for slack.com).
        self._domain = host.removeprefix("api.")

    async def resolve(self, files: Sequence[FileRef]) -> tuple[FileRef, ...]:
        """``files`` with every Slack Connect file looked up (``files.info``)."""
        return tuple([await self._resolve(f) if unresolved(f) else f for f in files])

    async def _resolve(self, file: FileRef) -> FileRef:
        try:
            response = await self._client.files_info(file=file.id)
        except CALL_ERRORS as exc:
            log.info("files.info refused %s: %s", file.id, describe(exc))
            return FileRef(file.id, file.name, problem=CONNECT)
        found = response.get("file")
        if not isinstance(found, dict) or not found.get("id"):
            return FileRef(file.id, file.name, problem=CONNECT)
        resolved = file_ref(found)
        return (
            FileRef(resolved.id, resolved.name, problem=CONNECT)
            if unresolved(resolved)
            else resolved
        )

    async def download(self, file: FileRef) -> AsyncIterator[bytes]:
        """The file's bytes in chunks as Slack sends them; ``FileUnavailable`` with a
        reason a person understands when Slack will not give them."""
        if file.problem:
            raise FileUnavailable(file.problem)
        if not file.url:
            raise FileUnavailable(CONNECT)
        if not self._on_slack(file.url):
            raise FileUnavailable(NOT_SLACK)  # the token goes nowhere else
        headers = {"Authorization": f"Bearer {self._client.token}"}
        outcome = "error"
        try:
            async with self._http.session.get(
                file.url, headers=headers, timeout=DOWNLOAD_TIMEOUT
            ) as response:
                reason = _refused(response, file)
                if reason:
                    log.warning(
                        "Slack refused file %s: HTTP %s, %s",
                        file.id,
                        response.status,
                        response.content_type,
                    )
                    raise FileUnavailable(reason)
                outcome = "ok"  # Slack gives the file (the core may stop reading early)
                async for chunk in response.content.iter_chunked(CHUNK):
                    yield chunk
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            outcome = "error"
            # The exception's text may hold the URL, never the header: logged by type only.
            log.warning("download of Slack file %s failed: %s", file.id, type(exc).__name__)
            raise FileUnavailable(FAILED) from None
        finally:
            metrics.PLATFORM_CALLS.labels(PLATFORM, DOWNLOAD_METHOD, outcome).inc()

    def _on_slack(self, url: str) -> bool:
        parts = urlsplit(url)
        host = parts.hostname or ""
        return parts.scheme in ("https", "http") and (
            host == self._domain or host.endswith("." + self._domain)
        )


def _refused(response: aiohttp.ClientResponse, file: FileRef) -> str:
    """Why Slack's answer is not the file, or ""."""
    if response.status in (404, 410):
        return GONE
    if response.status in (401, 403):
        return FORBIDDEN
    if response.status != 200:
        return FAILED
    expects_html = file.mimetype.startswith("text/html")
    if response.content_type == "text/html" and not expects_html:
        return NOT_ALLOWED  # Slack's sign-in page: the token was refused
    return ""


async def upload(
    client: AsyncWebClient, channel: str, thread_ts: str, files: Sequence[OutFile]
) -> None:
    """Post ``files`` into the thread (``files.getUploadURLExternal``, the bytes,
    ``files.completeUploadExternal``: slack_sdk's ``files_upload_v2``). Raises
    ``PlatformFailed`` when Slack refuses."""
    if not files:
        return
    items = [
        {
            "file": f.data,
            "filename": _with_extension(f),
            "title": f.title or f.name,
            "alt_txt": f.title or None,  # what a screen reader says of an image
        }
        for f in files
    ]
    try:
        await client.files_upload_v2(file_uploads=items, channel=channel, thread_ts=thread_ts)
    except (*CALL_ERRORS, SlackRequestError) as exc:
        what = describe(exc) if isinstance(exc, SlackApiError) else type(exc).__name__
        raise PlatformFailed(f"slack refused {len(files)} file(s) in {channel}: {what}") from exc


def _with_extension(file: OutFile) -> str:
    """Slack tells a file's type by its name: "chart" of image/png goes as "chart.png"."""
    if "." in file.name.rsplit("/", 1)[-1]:
        return file.name
    return file.name + (mimetypes.guess_extension(file.mimetype) or "")
