"""Files on Discord: what a question's attachments are, fetching their bytes, and which
of an answer's files fit on a message.

A message's attachments (``id``, ``filename``, ``content_type``, ``size``, ``url``)
become ``bridge.events.FileRef``s. Their URLs are signed CDN links with an expiry
(``ex``, hex seconds; Discord hands out fresh ones with each fetch of the message),
fetched without the bot token. ``download`` streams the bytes as they arrive
(discord.py's ``Attachment.read`` would hold the whole file); a link that expired,
or a file Discord will not give (403) or no longer has (404), is
``FileUnavailable`` with a reason a person understands.

On the way out a message holds at most ``MAX_FILES`` attachments, and the files of
one upload stay within the guild's limit (``discord.Guild.filesize_limit``: 10 MiB
unboosted, more with boosts; 10 MiB in DMs): ``fit`` picks those that go, in order.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import aiohttp
import discord

from bridge.errors import FileUnavailable
from bridge.events import FileRef
from bridge.reply import OutFile

MAX_FILES = 10  # attachments on one message (docs: Create Message)
CHUNK = 64 * 1024  # bytes handed on at a time, at most
# Seconds to connect, and between two reads, before a download counts as failed.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0

EXPIRED = "its Discord link expired"
GONE = "it is no longer on Discord (deleted, or its link expired)"
REFUSED = "Discord did not let the bot fetch it"
UNREACHABLE = "Discord's file server could not be reached"


def file_refs(attachments: Sequence[discord.Attachment]) -> tuple[FileRef, ...]:
    """The files of a message as the core reads them (nothing fetched)."""
    return tuple(
        FileRef(
            id=str(a.id),
            name=a.filename,
            # "text/plain; charset=utf-8" → "text/plain"; "" when Discord does not say.
            mimetype=(a.content_type or "").split(";")[0].strip(),
            size=a.size,
            url=a.url,
        )
        for a in attachments
    )


def link_expired(url: str, now: float | None = None) -> bool:
    """Whether a signed CDN link is past its ``ex`` (a link without one never expires)."""
    expiry = parse_qs(urlsplit(url).query).get("ex")
    if not expiry:
        return False
    try:
        return int(expiry[0], 16) < (time.time() if now is None else now)
    except ValueError:
        return False


async def download(session: aiohttp.ClientSession, file: FileRef) -> AsyncIterator[bytes]:
    """The bytes of ``file`` from Discord's CDN, in chunks as they arrive."""
    if not file.url or link_expired(file.url):
        raise FileUnavailable(EXPIRED)
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT
    )
    try:
        async with session.get(file.url, timeout=timeout) as response:
            if response.status == 404:
                raise FileUnavailable(GONE)
            if response.status in (401, 403):
                raise FileUnavailable(REFUSED)
            if response.status != 200:
                raise FileUnavailable(f"Discord's file server answered {response.status}")
            async for chunk in response.content.iter_chunked(CHUNK):
                yield chunk
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise FileUnavailable(UNREACHABLE) from exc


@dataclass(frozen=True)
class Fit:
    go: list[OutFile]  # attached, in order
    left: list[OutFile]  # over the count or size limit


def fit(files: Sequence[OutFile], room: int, size_limit: int) -> Fit:
    """The files that go on a message with ``room`` attachments free, their bytes
    together within ``size_limit``; in order, a file too big for what is left is
    passed over for later, smaller ones."""
    go: list[OutFile] = []
    left: list[OutFile] = []
    used = 0
    for file in files:
        if len(go) < room and used + len(file.data) <= size_limit:
            go.append(file)
            used += len(file.data)
        else:
            left.append(file)
    return Fit(go, left)


def not_attached(files: Sequence[OutFile], limit: int) -> str:
    """The one line that says which files could not be attached (within ``limit``)."""
    count = len(files)
    head = f"⚠️ {count} file{'s' if count != 1 else ''} could not be attached (Discord's limits)"
    names = ", ".join(f.name for f in files)
    line = f"{head}: {names}"
    return line if len(line) <= limit else head + "."
