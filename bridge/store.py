"""The storage interface the core owns. Implementations live in ``storage/``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from bridge.events import ThreadKey


class TurnStatus(StrEnum):
    QUEUED = "queued"  # stored, waiting for its thread's earlier turns
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"  # done, but a person stopped the answer part-way
    FAILED = "failed"


OPEN_STATUSES = (TurnStatus.QUEUED, TurnStatus.RUNNING)


@dataclass(frozen=True)
class Conversation:
    id: int
    key: ThreadKey
    chat_id: str | None  # None until Open WebUI has created the chat
    last_answer_id: str | None  # the assistant message this thread's next turn chains under
    model: str
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class Turn:
    id: int
    conversation_id: int
    platform_message_id: str
    sort_key: str  # the question's place in its thread, in the platform's order
    event: str | None  # the PlatformEvent as JSON (None for turns from schema 1)
    user_message_id: str
    assistant_message_id: str
    status: TurnStatus
    reply_ids: tuple[str, ...]  # platform messages the answer occupies, in order
    error: str | None
    created_at: float
    updated_at: float
    lease_owner: str | None = None  # the process that took it last (``take_turn``)


@dataclass(frozen=True)
class NewTurn:
    """What ``enqueue_turn`` records for one delivery."""

    key: ThreadKey
    event_id: str
    platform_message_id: str
    sort_key: str
    event: str
    model: str  # for the conversation, if this turn creates it
    user_message_id: str
    assistant_message_id: str
    # Refuse the turn (``ThreadBusy``) when its thread already holds this many
    # unanswered turns (running included); 0 = no limit.
    limit: int = 0


@dataclass(frozen=True)
class Taken:
    """A turn ``take_turn`` leased to its caller."""

    turn: Turn
    # The replica whose expired lease the turn was running under (it died or hung),
    # None when the turn was queued or its last runner let it go.
    taken_from: str | None = None


@dataclass(frozen=True)
class Held:
    """A turn whose lease ``renew_leases`` extended."""

    turn_id: int
    conversation_id: int
    stop_requested: bool  # someone asked to stop its answer (possibly on another replica)


class ThreadBusy(Exception):
    """``enqueue_turn`` refused a turn: its thread holds ``NewTurn.limit`` unanswered turns."""

    def __init__(self, waiting: int) -> None:
        super().__init__(f"{waiting} turns waiting")
        self.waiting = waiting


@dataclass(frozen=True)
class FolderRecord:
    """The Open WebUI folder a platform place (channel, or a platform's DMs) files into."""

    platform: str
    workspace: str
    place: str
    folder_id: str
    name: str


@dataclass(frozen=True)
class RatingRecord:
    turn_id: int
    rater: str  # the platform user, e.g. "slack:U123"
    feedback_id: str  # Open WebUI's feedback record
    vote: int  # 1 or -1


class Store(Protocol):
    async def enqueue_turn(self, turn: NewTurn) -> Turn | None:
        """In one transaction: claim the delivery, find or create the conversation, and
        record the turn as queued. None when the delivery or the platform message was
        seen before (a duplicate): nothing is written then. Raises ``ThreadBusy`` (and
        writes nothing) when the thread is full (``NewTurn.limit``)."""
        ...

    async def delivered(
        self, key: ThreadKey, event_id: str, platform_message_id: str, *, or_event: str = ""
    ) -> bool:
        """Whether this delivery, or another delivery of the same platform message, was
        taken before (the check ``enqueue_turn`` makes, without writing); also true when
        ``or_event`` was claimed (``claim_event``)."""
        ...

    # -- the turn queue across processes (``bridge.leases``) ---------------------
    # A turn is run under a lease: an owner (one bridge process) and an expiry on the
    # database's clock, renewed while its answer runs. A conversation whose open turn
    # another owner leases, unexpired, is that owner's until it lets go.

    async def take_turn(self, conversation_id: int, owner: str, lease: float) -> Taken | None:
        """Atomically lease the conversation's next turn to ``owner`` for ``lease``
        seconds: a running one (cut off by a restart or a replica's death) first, else
        the queued one earliest in platform order. None when there is none, or another
        owner's lease on one of its open turns has not expired."""
        ...

    async def open_conversations(self, platform: str, owner: str, fresh: float = 0.0) -> list[int]:
        """Conversations of ``platform`` with queued or running turns that ``owner``
        may take (no other owner's unexpired lease on them), leaving out those whose
        only open turns were queued in the last ``fresh`` seconds and never leased
        (the replica that stored them takes them itself)."""
        ...

    async def renew_leases(self, owner: str, lease: float) -> list[Held]:
        """Extend every lease ``owner`` holds on an open turn by ``lease`` seconds from
        now; the turns it still holds (a lease another owner took over is gone)."""
        ...

    async def lease_owners(self) -> list[str]:
        """Owners holding unexpired leases on open turns."""
        ...

    async def release_leases(self, owner: str) -> None:
        """``owner``'s leases end now: it shut down cleanly, or is known dead."""
        ...

    async def request_stop(self, turn_id: int) -> bool:
        """Ask whoever runs the open turn to stop its answer; False when it is not open."""
        ...

    async def mark_running(self, turn_id: int) -> None: ...

    async def settle_turn(
        self, turn_id: int, status: TurnStatus, *, error: str | None, answer_id: str | None
    ) -> None:
        """Record the turn's end; with ``answer_id`` (the answer exists in the chat, whole
        or partial) it becomes the conversation's ``last_answer_id``, atomically."""
        ...

    async def set_reply_ids(self, turn_id: int, reply_ids: Sequence[str]) -> None: ...

    async def get_conversation(self, key: ThreadKey) -> Conversation | None: ...

    async def conversation_by_id(self, conversation_id: int) -> Conversation | None: ...

    async def set_chat_id(self, conversation_id: int, chat_id: str) -> None: ...

    async def forget_chat(self, conversation_id: int) -> None:
        """The conversation's chat is gone (deleted in Open WebUI): its next turn starts
        a new one, chained under nothing."""
        ...

    async def retire_conversation(self, key: ThreadKey) -> bool:
        """Detach ``key`` from its conversation (kept, with its turns, under another
        key), so the thread's next question starts a new one. False if there was none."""
        ...

    async def reply_channel(self, key: ThreadKey) -> str | None:
        """Where the conversation's answers go when its own thread could not be opened
        (the channel its question was asked in); None: in the thread."""
        ...

    async def set_reply_channel(self, key: ThreadKey, channel: str) -> None: ...

    async def find_turn(self, conversation_id: int, platform_message_id: str) -> Turn | None: ...

    async def turns(self, conversation_id: int) -> list[Turn]: ...

    async def turn_by_id(self, turn_id: int) -> Turn | None: ...

    async def turn_by_reply(self, platform: str, message_id: str) -> Turn | None:
        """The newest turn whose answer occupies platform message ``message_id``."""
        ...

    async def get_filing(self, conversation_id: int) -> dict[str, Any]:
        """What is known about how the conversation's chat is filed (JSON object)."""
        ...

    async def set_filing(self, conversation_id: int, filing: dict[str, Any]) -> None: ...

    async def get_folder(
        self, platform: str, workspace: str, place: str
    ) -> FolderRecord | None: ...

    async def save_folder(self, folder: FolderRecord) -> None: ...

    async def get_rating(self, turn_id: int, rater: str) -> RatingRecord | None: ...

    async def save_rating(self, rating: RatingRecord) -> None: ...

    async def delete_rating(self, turn_id: int, rater: str) -> None: ...

    async def get_upload(self, conversation_id: int, platform_file_id: str) -> str | None:
        """The chat's file item (JSON) of a platform file already uploaded in this thread."""
        ...

    async def save_upload(
        self, conversation_id: int, platform_file_id: str, file_id: str, entry: str
    ) -> None: ...

    async def claim_event(self, platform: str, event_id: str) -> bool:
        """Record a delivery that makes no turn of its own (an edit of a queued question);
        False when it was taken before."""
        ...

    async def update_queued_event(self, turn_id: int, event: str) -> bool:
        """Replace the stored event of a turn still queued (its question was edited);
        False when it has started (or is gone): nothing is written then."""
        ...

    async def drop_queued_turn(self, turn_id: int) -> bool:
        """Forget a turn still queued (its question was deleted); False when it has
        started (or is gone): nothing is written then."""
        ...

    async def prune_events(self, older_than: float) -> int:
        """Forget deliveries recorded before ``older_than`` (epoch seconds)."""
        ...

    async def writable(self) -> bool:
        """One real write round trip (readiness); raises when the database refuses."""
        ...

    async def close(self) -> None: ...
