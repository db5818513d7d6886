"""Rows → the core's records, the same for both back ends (both rows read by name)."""

from __future__ import annotations

import json
from typing import Any

from bridge.events import ThreadKey
from bridge.store import Conversation, Turn, TurnStatus

CONVERSATION_COLUMNS = (
    "id, platform, workspace, channel, thread, chat_id, last_answer_id, model, "
    "created_at, updated_at"
)
TURN_COLUMNS = (
    "id, conversation_id, platform_message_id, sort_key, event, user_message_id, "
    "assistant_message_id, status, reply_ids, error, created_at, updated_at"
)


def conversation(row: Any) -> Conversation:
    return Conversation(
        id=row["id"],
        key=ThreadKey(
            platform=row["platform"],
            workspace=row["workspace"],
            channel=row["channel"],
            thread=row["thread"],
        ),
        chat_id=row["chat_id"],
        last_answer_id=row["last_answer_id"],
        model=row["model"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def turn(row: Any) -> Turn:
    return Turn(
        id=row["id"],
        conversation_id=row["conversation_id"],
        platform_message_id=row["platform_message_id"],
        sort_key=row["sort_key"],
        event=row["event"],
        user_message_id=row["user_message_id"],
        assistant_message_id=row["assistant_message_id"],
        status=TurnStatus(row["status"]),
        reply_ids=tuple(json.loads(row["reply_ids"])),
        error=row["error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
