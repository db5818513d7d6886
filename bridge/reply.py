"""How the core talks back to a platform: a reply handle and its capabilities."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bridge.events import FileRef, PlatformEvent, ThreadKey
from bridge.policy import AccessPolicy, Asker

if TYPE_CHECKING:
    from bridge.actions import Acted, Action
    from bridge.channels import ChannelRules


@dataclass(frozen=True)
class Capabilities:
    """Platform limits the core paces and splits by, instead of branching on the platform."""

    max_message_length: int  # characters one platform message may hold
    min_update_interval: float  # seconds between two updates of one reply


@dataclass(frozen=True)
class OutFile:
    """A file the answer brings to the thread (a generated image, a long code block)."""

    name: str
    mimetype: str
    data: bytes
    title: str = ""  # what the platform shows as the file's title ("" = its name)


class ReplyHandle(Protocol):
    """One answer in one thread.

    The core calls ``start`` once, ``update`` zero or more times with the whole
    text so far, then exactly one of ``finish`` / ``fail``. ``update`` runs apart
    from following the model: it may skip a text (return False) when the
    platform's budget does not allow a call now; the core offers a newer text
    later. ``finish`` must land the final text (retrying as the platform allows)
    or raise. ``update``/``finish`` raise ``bridge.errors.ReplyStopped`` when the
    person stopped the answer from the platform (e.g. Slack's stop button).
    ``fail`` always shows its one message, even when ending a stream fails: it
    edits the reply's message where one exists instead of posting a new one.

    After ``finish`` the core may call ``attach`` once and, when that raises, ``fail``
    once with a short notice, shown below the answer (the answer stays).
    """

    async def start(self) -> None: ...

    async def update(self, text: str) -> bool: ...

    async def finish(self, text: str) -> None: ...

    async def fail(self, message: str) -> None: ...

    async def attach(self, files: Sequence[OutFile]) -> None:
        """Post ``files`` with the answer, after ``finish``: Slack into the thread,
        Discord as attachments of the answer's message. Raises
        ``bridge.errors.PlatformFailed`` when the platform refuses them."""
        ...


# The reply saves the ids of the platform messages it occupies (in order) through
# this callback each time the list changes, so a restart can edit them in place.
SaveMessageIds = Callable[[Sequence[str]], Awaitable[None]]


class Platform(Protocol):
    """What an adapter registers with the core (``Bridge.register``)."""

    @property
    def name(self) -> str:
        """``ThreadKey.platform`` of the threads it serves."""
        ...

    @property
    def capabilities(self) -> Capabilities: ...

    async def prepare(self, event: PlatformEvent) -> PlatformEvent:
        """The event as the model should read it: author name, readable text, and the
        earlier thread messages when ``needs_context``. Runs inside the turn (after it
        is queued), so slow look-ups cannot reorder questions; must not raise for a
        failed look-up (fall back to ids)."""
        ...

    def download(self, file: FileRef) -> AsyncIterator[bytes]:
        """The bytes of ``file`` in chunks as they arrive (never all held at once); raises
        ``bridge.errors.FileUnavailable`` when the platform will not give it."""
        ...

    def reply(
        self, event: PlatformEvent, message_ids: Sequence[str], save_ids: SaveMessageIds
    ) -> ReplyHandle:
        """A reply to ``event`` in its thread. ``message_ids`` are the messages an
        earlier attempt of this turn occupies (after a restart): edit them, never
        post a second copy."""
        ...


class Intake(Protocol):
    """What an adapter needs of the core (``bridge.intake.Bridge`` is one)."""

    def register(self, platform: Platform) -> None: ...

    @property
    def access(self) -> AccessPolicy:
        """What the adapter must find out about an asker (guest, external, roles)."""
        ...

    async def knows_thread(self, key: ThreadKey) -> bool: ...

    async def submit(self, event: PlatformEvent, asker: Asker | None = None) -> object:
        """Queue the question; raises ``bridge.errors.QuestionRefused`` (with the notice
        to show the asker, or None for silence) when it is not taken."""
        ...

    async def start_over(self, key: ThreadKey) -> bool: ...

    def rules(self, channel: str) -> ChannelRules:
        """How ``channel`` behaves (``respond_to``, ``suggested_prompts``, …)."""
        ...

    async def edit(self, event: PlatformEvent, asker: Asker | None = None) -> object:
        """The question ``event.message_id`` now reads ``event.text`` (and ``event.files``);
        ``event.event_id`` is the edit's own delivery id, so a repeated edit changes
        nothing. Queued: answered in its new form; the thread's newest answered question:
        a new branch in the chat and the answer replaced in place; older: a note.
        Raises ``QuestionRefused`` like ``submit``."""
        ...

    async def retract(self, key: ThreadKey, message_id: str) -> bool:
        """The question ``message_id`` was deleted on the platform: not answered if still
        queued (True); an answered one stays in the chat as it is (False)."""
        ...

    async def act(self, action: Action) -> Acted:
        """A person's 👍/👎/⏹/🔁 on an answer's message, decided by the core."""
        ...

    async def stop(self, key: ThreadKey) -> bool:
        """Stop the thread's answer under way (a command); False if none."""
        ...
