"""Where a bridged chat is filed in Open WebUI, so admins find it: a folder per
platform channel, tags, and a link back to the platform thread.

``ChatFiling`` does it after each turn, with as few requests as it can: what a
conversation already has (its folder, tags, link) is remembered in its filing
record, and a channel's folder id in the folders table, so a later turn in the
same thread costs no request unless a new person asks or the channel was renamed.
Before a turn that creates a chat it decides the chat's ``Placement``: the place's
folder (0.6.41 and later) and the link (where the bridge writes the answer's
placeholder) go in with the chat's creation, so they need no request of their own.

* Folder: "Slack · #support", "Discord · " + the server and channel names, one
  "Slack · DMs" per platform. Created on first use and found again by id: an admin may rename it in
  Open WebUI and it stays in use under that name, until the channel itself is
  renamed on the platform (then the folder takes the new name, same id). A folder
  deleted in Open WebUI is created anew when the next chat is filed. A place the
  adapter did not name (no ``place_name``, not a DM; e.g. the console) gets no folder.
* Tags: the platform, the channel name (without "#"), each asker's display name.
* Link: once per chat, a status entry above the first finished answer that opens
  the platform thread (see ``Organiser.link_thread``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bridge.events import PlatformEvent, ThreadKey
from bridge.openwebui.flows import Placement
from bridge.openwebui.organise import (
    FolderGone,
    FoldersDisabled,
    Organiser,
    link_status,
    tag_id,
    taggable,
)
from bridge.store import Conversation, FolderRecord, Store

log = logging.getLogger(__name__)

DM_PLACE = "dm"  # the folders table's place key for a platform's DMs
_HASH = re.compile(r"(^|\s)#")  # a "#" that starts a channel name


class Filing(Protocol):
    async def placement(self, conversation: Conversation, event: PlatformEvent) -> Placement:
        """Before a turn that creates the conversation's chat: what the chat can carry
        from its creation. Raises on Open WebUI errors (the core then creates the chat
        unplaced; ``file`` places it afterwards)."""
        ...

    async def file(
        self,
        conversation: Conversation,
        event: PlatformEvent,
        chat_id: str,
        answer_id: str,
        placed: Placement | None = None,
    ) -> None:
        """After a turn (its answer final in the chat): make sure the chat is in its
        place's folder, tagged, and linked to the thread. ``answer_id`` is "" when
        the turn's answer never reached the chat (the link waits for a later one:
        Open WebUI silently drops a status on a missing message). ``placed``: what the
        chat got at its creation, when this turn created it. Raises on Open WebUI
        errors (the core logs them; the turn is not affected)."""
        ...


@dataclass(frozen=True)
class Place:
    """Where a conversation happens, as Open WebUI shows it."""

    platform: str  # the platform key: "slack", "discord", "console"
    workspace: str
    key: str  # the channel id, or ``DM_PLACE``
    folder_name: str | None  # None: not filed in a folder
    channel_tag: str | None
    label: str  # what the link back reads

    @property
    def platform_name(self) -> str:
        return platform_name(self.platform)


def platform_name(platform: str) -> str:
    """ "slack" → "Slack": how people name the platform."""
    return platform[:1].upper() + platform[1:]


def place_of(key: ThreadKey, event: PlatformEvent) -> Place:
    """The folder, channel tag and link label of the event's place."""
    platform = platform_name(key.platform)
    if event.direct:
        return Place(
            key.platform, key.workspace, DM_PLACE, f"{platform} · DMs", "DMs", f"{platform} DM"
        )
    name = event.place_name.strip()
    if not name:
        return Place(key.platform, key.workspace, event.channel, None, None, f"{platform} thread")
    return Place(
        key.platform,
        key.workspace,
        event.channel,
        f"{platform} · {name}",
        _HASH.sub(r"\1", name).strip() or None,
        f"{platform} thread · {name}",
    )


@dataclass
class FilingState:
    """What the conversation's chat already has; kept as the conversation's filing JSON."""

    chat: str = ""
    folder: str = ""  # the folder id the chat was filed into
    tags: list[str] = field(default_factory=list)  # tag ids already added
    linked: bool = False

    @classmethod
    def load(cls, data: dict[str, Any], chat_id: str) -> FilingState:
        """The stored state; a fresh one when it was about another chat."""
        if data.get("chat") != chat_id:
            return cls(chat=chat_id)
        return cls(
            chat=chat_id,
            folder=str(data.get("folder") or ""),
            tags=[str(t) for t in data.get("tags") or []],
            linked=bool(data.get("linked")),
        )

    def to_json(self) -> dict[str, Any]:
        return {"chat": self.chat, "folder": self.folder, "tags": self.tags, "linked": self.linked}


Step = Callable[[], Awaitable[None]]


class ChatFiling:
    """The ``Filing`` the core calls after each turn."""

    def __init__(self, organiser: Organiser, store: Store) -> None:
        self._organiser = organiser
        self._store = store
        self._folders_off = False  # Open WebUI refused folders: stop asking (this process)
        # One folder decision per place at a time: two threads starting in a new
        # channel together must not both create (or rename) its folder.
        self._places: dict[tuple[str, str, str], asyncio.Lock] = {}
        # Folders seen to exist in this process: from 0.11.4 a new chat goes in one
        # unchecked (the server refuses a deleted one itself).
        self._seen: set[str] = set()

    async def placement(self, conversation: Conversation, event: PlatformEvent) -> Placement:
        place = place_of(conversation.key, event)
        link = link_status(event.link, place.label) if event.link else None
        return Placement(await self._new_chat_folder(place), link)

    async def file(
        self,
        conversation: Conversation,
        event: PlatformEvent,
        chat_id: str,
        answer_id: str,
        placed: Placement | None = None,
    ) -> None:
        place = place_of(conversation.key, event)
        stored = await self._store.get_filing(conversation.id)
        state = FilingState.load(stored, chat_id)
        gone = None
        if placed is not None:
            state.folder = placed.folder_id or state.folder
            state.linked = state.linked or placed.link is not None
            gone = placed.gone_folder
        steps: list[Step] = [
            lambda: self._link(state, answer_id, event.link, place.label),
            lambda: self._file_in_folder(state, place, gone),
            lambda: self._tag(state, place, event.author_name),
        ]
        # Each step on its own: a failed folder must not keep the link or the tags away.
        errors: list[Exception] = []
        for step in steps:
            try:
                await step()
            except Exception as exc:
                errors.append(exc)
        if state.to_json() != stored:
            await self._store.set_filing(conversation.id, state.to_json())
        for extra in errors[1:]:
            log.warning("could not file chat %s: %s", chat_id, extra)
        if errors:
            raise errors[0]

    # -- link -------------------------------------------------------------------

    async def _link(self, state: FilingState, answer_id: str, url: str, label: str) -> None:
        """Once per chat, on the first answer that exists when a link is known."""
        if state.linked or not url or not answer_id:
            return
        await self._organiser.link_thread(state.chat, answer_id, url, label)
        state.linked = True

    # -- tags -------------------------------------------------------------------

    async def _tag(self, state: FilingState, place: Place, asker: str) -> None:
        names = [place.platform_name, place.channel_tag or "", asker]
        new = [n for n in dict.fromkeys(names) if taggable(n) and tag_id(n) not in state.tags]
        if not new:
            return
        await self._organiser.tag_chat(state.chat, new)
        state.tags.extend(dict.fromkeys(tag_id(n) for n in new))

    # -- folder -----------------------------------------------------------------

    async def _file_in_folder(self, state: FilingState, place: Place, gone: str | None) -> None:
        if self._folders_off or place.folder_name is None:
            return
        try:
            async with self._lock(place):
                folder_id = await self._folder_for(state, place, gone)
        except FoldersDisabled:
            self._folders_refused()
            return
        state.folder = folder_id

    def _folders_refused(self) -> None:
        self._folders_off = True
        log.warning("Open WebUI has folders turned off: chats are tagged, not filed")

    async def _new_chat_folder(self, place: Place) -> str | None:
        """The folder a new chat of the place is created in: the place's own, created
        now if it has none (or it was deleted). None where the server would not keep
        it (0.6.15) or folders are off."""
        if self._folders_off or place.folder_name is None:
            return None
        if not self._organiser.server.creates_chats_in_folders:
            return None
        try:
            async with self._lock(place):
                record = await self._store.get_folder(place.platform, place.workspace, place.key)
                if record is not None and await self._exists(record.folder_id):
                    return record.folder_id
                return (await self._created(place)).folder_id
        except FoldersDisabled:
            self._folders_refused()
            return None

    async def _exists(self, folder_id: str) -> bool:
        """Whether a new chat may be created in the folder: before 0.11.4 a stale id
        hides the chat, so the folder is checked each time (one request); from 0.11.4
        the server refuses a deleted one, so a folder seen in this process is not."""
        if folder_id in self._seen and self._organiser.server.checks_folder_ids:
            return True
        if await self._organiser.folder(folder_id) is None:
            self._seen.discard(folder_id)
            return False
        self._seen.add(folder_id)
        return True

    def _lock(self, place: Place) -> asyncio.Lock:
        return self._places.setdefault((place.platform, place.workspace, place.key), asyncio.Lock())

    async def _folder_for(self, state: FilingState, place: Place, gone: str | None) -> str:
        """The place's folder id, the chat filed into it (unless it already was).
        ``gone``: a folder id the server just refused as deleted."""
        record = await self._store.get_folder(place.platform, place.workspace, place.key)
        if record is not None and record.folder_id == gone:
            self._seen.discard(record.folder_id)
            record = None
        exists = False  # known to exist this instant: created or renamed just now
        if record is not None and record.name != place.folder_name:
            record = await self._renamed(record, place)
            exists = record is not None
        if record is None:
            record, exists = await self._created(place), True
        if state.folder == record.folder_id:
            return record.folder_id
        try:
            await self._organiser.file_chat(state.chat, record.folder_id, exists=exists)
        except FolderGone:  # deleted in Open WebUI since: a new one takes its place
            self._seen.discard(record.folder_id)
            record = await self._created(place)
            await self._organiser.file_chat(state.chat, record.folder_id, exists=True)
        self._seen.add(record.folder_id)
        return record.folder_id

    async def _created(self, place: Place) -> FolderRecord:
        name = place.folder_name or ""
        folder = await self._organiser.ensure_folder(name)
        log.info("chats of %s are filed in Open WebUI folder %r", name, folder.name)
        return await self._saved(place, folder.id)

    async def _renamed(self, record: FolderRecord, place: Place) -> FolderRecord | None:
        """The channel was renamed on the platform: so is its folder (same id).
        None if the folder is gone."""
        name = place.folder_name or ""
        try:
            folder = await self._organiser.rename_free(record.folder_id, name)
        except FolderGone:
            return None
        log.info("folder %r renamed to %r (the channel was renamed)", record.name, folder.name)
        return await self._saved(place, record.folder_id)

    async def _saved(self, place: Place, folder_id: str) -> FolderRecord:
        # The name kept is the one the bridge chose (not a " (2)" Open WebUI forced,
        # nor an admin's rename): a rename on the platform is a change from it.
        record = FolderRecord(
            place.platform, place.workspace, place.key, folder_id, place.folder_name or ""
        )
        await self._store.save_folder(record)
        self._seen.add(folder_id)
        return record
