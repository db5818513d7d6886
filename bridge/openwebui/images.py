"""The images of an answer (Open WebUI's image generation, a tool's image), fetched
from Open WebUI so the thread can show them as real images.

Where they are: from 0.6.27 the stored answer's ``files`` holds
``{"type": "image", "url": "/api/v1/files/<id>/content", ...}``; on 0.6.15 only the
live ``files`` event carries them (the web UI stores them with the history it
writes), so the follower keeps what that event brought. A Markdown image in the
text whose address is relative (``![..](/api/v1/files/<id>/content)``) cannot be
opened from Slack or Discord: the thread shows its alt text in its place, and the
file goes with the answer like the others.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.errors import BridgeError
from bridge.openwebui.client import OpenWebUIClient
from bridge.reply import OutFile

log = logging.getLogger(__name__)

MAX_IMAGES = 10  # per answer; more are left in the Open WebUI chat
MAX_BYTES = 20 * 1024 * 1024  # an image larger than this is not fetched
_FILE_URL = re.compile(r"^/api/v1/files/([^/?#]+)/content")
_RELATIVE_IMAGE = re.compile(r"!\[([^\]\n]*)\]\((/[^)\s]+)\)")
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}


@dataclass(frozen=True)
class ImageRef:
    url: str  # relative to Open WebUI ("/api/v1/files/<id>/content") or a data URL
    name: str = ""


def image_refs(message: dict[str, Any], live_files: Iterable[Any] = ()) -> list[ImageRef]:
    """The answer's images: its stored ``files`` and those the live events brought,
    each once, in order."""
    refs: list[ImageRef] = []
    seen: set[str] = set()
    stored = message.get("files")
    for item in [*(stored if isinstance(stored, list) else []), *live_files]:
        if not isinstance(item, dict) or item.get("type") != "image":
            continue
        url = item.get("url")
        if not isinstance(url, str) or not url or url in seen:
            continue
        if not (url.startswith("/") or url.startswith("data:image/")):
            continue  # an outside address: the platform can open it, nothing to fetch
        seen.add(url)
        refs.append(ImageRef(url, str(item.get("name") or "")))
    return refs


def unlink_relative_images(text: str) -> tuple[str, list[ImageRef]]:
    """``text`` with each relative Markdown image replaced by its alt text, and those
    images (Open WebUI file addresses only; other relative links stay as they are)."""
    refs: list[ImageRef] = []

    def replace(match: re.Match[str]) -> str:
        alt, url = match.group(1), match.group(2)
        if _FILE_URL.match(url) is None:
            return match.group(0)
        refs.append(ImageRef(url, alt))
        return f"_({alt.strip() or 'image'}, attached)_"

    return _RELATIVE_IMAGE.sub(replace, text), refs


@dataclass(frozen=True)
class Fetched:
    files: tuple[OutFile, ...]
    missing: int  # images that could not be fetched


async def fetch(client: OpenWebUIClient, refs: Sequence[ImageRef]) -> Fetched:
    """The images' bytes from Open WebUI; one that cannot be read is counted, not raised."""
    files: list[OutFile] = []
    missing = 0
    for index, ref in enumerate(refs[:MAX_IMAGES]):
        try:
            data, mimetype = await _bytes(client, ref)
        except (BridgeError, ValueError) as exc:
            log.warning("could not fetch image %s of an answer: %s", index + 1, exc)
            missing += 1
            continue
        files.append(OutFile(_name(ref, mimetype, index), mimetype, data))
    return Fetched(tuple(files), missing + max(0, len(refs) - MAX_IMAGES))


async def _bytes(client: OpenWebUIClient, ref: ImageRef) -> tuple[bytes, str]:
    if ref.url.startswith("data:image/"):
        header, _, encoded = ref.url.partition(",")
        data = base64.b64decode(encoded, validate=False)
        mimetype = header[5:].split(";")[0]
    else:
        data, mimetype = await client.content(ref.url, MAX_BYTES)
    mimetype = mimetype.split(";")[0].strip().lower()
    if not mimetype.startswith("image/"):
        raise ValueError(f"not an image ({mimetype or 'no type'})")
    return data, mimetype


def _name(ref: ImageRef, mimetype: str, index: int) -> str:
    extension = _EXTENSIONS.get(mimetype, "png")
    name = ref.name.strip()
    if name and "." in name and len(name) <= 100 and "/" not in name:
        return name
    return f"image-{index + 1}.{extension}" if index else f"image.{extension}"
