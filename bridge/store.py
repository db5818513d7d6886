"""The storage interface the core owns. Implementations live in ``storage/``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bridge.events import ThreadKey


class TurnStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


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
    user_message_id: str
    assistant_message_id: str
    status: TurnStatus
    error: str | None
    created_at: float
    updated_at: float


class Store(Protocol):
    async def claim_event(self, platform: str, event_id: str) -> bool:
        """Record a delivery; False when it was seen before (a duplicate)."""
        ...

    async def get_conversation(self, key: ThreadKey) -> Conversation | None: ...

    async def conversation_by_id(self, conversation_id: int) -> Conversation | None: ...

    async def create_conversation(self, key: ThreadKey, model: str) -> Conversation:
        """Create the mapping for ``key`` (chat id unknown yet); returns the existing
        one if another task created it first."""
        ...

    async def set_chat_id(self, conversation_id: int, chat_id: str) -> None: ...

    async def find_turn(self, conversation_id: int, platform_message_id: str) -> Turn | None: ...

    async def start_turn(
        self,
        conversation_id: int,
        platform_message_id: str,
        user_message_id: str,
        assistant_message_id: str,
    ) -> Turn:
        """Record a running turn; raises ``DuplicateTurn`` if the platform message
        already has a turn in this conversation."""
        ...

    async def complete_turn(self, turn_id: int) -> None:
        """Mark done and make its answer the conversation's ``last_answer_id``, atomically."""
        ...

    async def fail_turn(self, turn_id: int, error: str) -> None: ...

    async def unfinished_turns(self) -> list[Turn]: ...

    async def turns(self, conversation_id: int) -> list[Turn]: ...

    async def prune_events(self, older_than: float) -> int:
        """Forget deliveries recorded before ``older_than`` (epoch seconds)."""
        ...

    async def close(self) -> None: ...


class DuplicateTurn(Exception):
    """The platform message already produced a turn."""
