"""How the core talks back to a platform: a reply handle and its capabilities."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bridge.events import PlatformEvent, ThreadKey
from bridge.policy import AccessPolicy, Asker

if TYPE_CHECKING:
    from bridge.actions import Acted, Action
    from bridge.channels import ChannelRules


@dataclass(frozen=True)
class Capabilities:
    """Platform limits the core paces and splits by, instead of branching on the platform."""

    max_message_length: int  # characters one platform message may hold
    min_update_interval: float  # seconds between two updates of one reply


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
    """

    async def start(self) -> None: ...

    async def update(self, text: str) -> bool: ...

    async def finish(self, text: str) -> None: ...

    async def fail(self, message: str) -> None: ...


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

    async def act(self, action: Action) -> Acted:
        """A person's 👍/👎/⏹/🔁 on an answer's message, decided by the core."""
        ...

    async def stop(self, key: ThreadKey) -> bool:
        """Stop the thread's answer under way (a command); False if none."""
        ...
