"""The files sent with a question: bounded, downloaded from the platform into a spooled
temporary file, uploaded to Open WebUI once per thread, and processed before the
answer starts. Every file that cannot be read is one short note in the thread, and
the question is answered all the same.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from bridge.errors import BridgeError, FileUnavailable
from bridge.events import FileRef
from bridge.openwebui import files as owui_files
from bridge.openwebui.client import OpenWebUIClient
from bridge.openwebui.files import FileRefused
from bridge.reply import Platform
from bridge.store import Store

log = logging.getLogger(__name__)

# Bytes a download keeps in memory before the spooled file moves to disk.
SPOOL_IN_MEMORY = 1024 * 1024


@dataclass(frozen=True)
class FileBounds:
    max_file_mb: int = 20  # BRIDGE_MAX_FILE_MB
    max_files: int = 10  # BRIDGE_MAX_FILES, per message

    @property
    def max_bytes(self) -> int:
        return self.max_file_mb * 1024 * 1024


class _TooBig(Exception):
    pass


def mimetype_of(file: FileRef) -> str:
    return file.mimetype or mimetypes.guess_type(file.name)[0] or ""


def not_read(name: str, reason: str) -> str:
    """The one line a thread shows for a file that was not read."""
    return f"_{name or 'A file'} was not read: {reason}._"


class Attachments:
    """Turns a question's ``FileRef``s into the items the chat keeps for them."""

    def __init__(
        self,
        client: OpenWebUIClient,
        store: Store,
        bounds: FileBounds,
        *,
        process_timeout: float = owui_files.PROCESS_TIMEOUT,
    ) -> None:
        self._client = client
        self._store = store
        self._bounds = bounds
        self._process_timeout = process_timeout

    async def gather(
        self,
        platform: Platform,
        conversation_id: int,
        files: tuple[FileRef, ...],
        model: str,
        note: Callable[[str], None],
    ) -> tuple[dict[str, Any], ...]:
        """The chat items of ``files`` in order; each file left out is one ``note``."""
        if not files:
            return ()
        limit = self._bounds.max_files
        if len(files) > limit:
            left = files[limit:]
            names = ", ".join(f.name for f in left)
            note(f"_{len(left)} more files were not read ({names}): at most {limit} per message._")
            files = files[:limit]
        sees_images: bool | None = None
        entries: list[dict[str, Any]] = []
        for file in files:
            image = owui_files.is_image(mimetype_of(file))
            if image and sees_images is None:
                sees_images = await self._sees_images(model)
            if image and not sees_images:
                note(not_read(file.name, f"{model} cannot see images"))
                continue
            try:
                entries.append(await self._entry(platform, conversation_id, file, image))
            except FileUnavailable as exc:
                note(not_read(file.name, exc.reason))
            except FileRefused as exc:
                note(not_read(file.name, exc.reason))
            except _TooBig:
                note(not_read(file.name, f"it is larger than {self._bounds.max_file_mb} MB"))
        return tuple(entries)

    async def _sees_images(self, model: str) -> bool:
        try:
            return owui_files.vision(await self._client.model(model))
        except BridgeError as exc:  # the completion finds out about the model itself
            log.debug("model %s not read before its images: %s", model, exc)
            return True

    async def _entry(
        self, platform: Platform, conversation_id: int, file: FileRef, image: bool
    ) -> dict[str, Any]:
        if file.problem:
            raise FileUnavailable(file.problem)
        known = await self._store.get_upload(conversation_id, file.id)
        if known is not None:
            # Uploaded already (a retry, or a restart before the answer): not again.
            entry: dict[str, Any] = json.loads(known)
        else:
            if file.size > self._bounds.max_bytes:
                raise _TooBig()
            with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
                await self._download(platform, file, spool)
                stored = await owui_files.upload(
                    self._client, file.name, mimetype_of(file), spool, image=image
                )
            entry = owui_files.chat_entry(self._client, stored, image=image)
            await self._store.save_upload(conversation_id, file.id, entry["id"], json.dumps(entry))
        if entry.get("type") != "image":
            await owui_files.wait_processed(
                self._client, str(entry["id"]), within=self._process_timeout
            )
        return entry

    async def _download(self, platform: Platform, file: FileRef, into: IO[bytes]) -> None:
        """Stream the file into ``into``, stopping as soon as it is over the bound."""
        count = 0
        chunks = platform.download(file)
        try:
            async for chunk in chunks:
                count += len(chunk)
                if count > self._bounds.max_bytes:
                    raise _TooBig()
                into.write(chunk)
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:  # the platform's connection is let go at once
                await close()
        if count == 0:
            raise FileUnavailable("it is empty")
