"""Rows → the core's records, the same for both back ends (both rows read by name)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from bridge.events import ThreadKey
from bridge.store import Conversation, Held, Taken, Turn, TurnStatus

CONVERSATION_COLUMNS = (
    "id, platform, workspace, channel, thread, chat_id, last_answer_id, model, "
    "created_at, updated_at"
)
TURN_COLUMNS = (
    "id, conversation_id, platform_message_id, sort_key, event, user_message_id, "
    "assistant_message_id, status, reply_ids, error, created_at, updated_at, lease_owner"
)
# A conversation's open turns in the order they run: one cut off first, then platform order.
OPEN_TURNS = (
    "SELECT " + TURN_COLUMNS + ", lease_until{now} FROM turns"
    " WHERE conversation_id = {p} AND status IN ('running', 'queued')"
    " ORDER BY status = 'queued', sort_key, id"
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
        lease_owner=row["lease_owner"],
    )


# ``open_conversations``' turn ``t`` another replica may pick up: under way, leased
# before (its owner let go or died), or queued before ``{p}`` (epoch seconds; a fresher
# one is its storing replica's to take).
NOT_FRESH = "(t.status = 'running' OR t.lease_owner IS NOT NULL OR t.created_at < {p})"


def pick(rows: list[Any], owner: str, now: float) -> Taken | None:
    """``take_turn``'s choice among a conversation's open turns (``OPEN_TURNS``): the
    first, unless another owner's lease on any of them has not expired."""
    if not rows or any(
        row["lease_owner"] not in (None, owner) and row["lease_until"] > now for row in rows
    ):
        return None
    first = rows[0]
    running = first["status"] == TurnStatus.RUNNING.value
    previous = first["lease_owner"]
    taken = replace(turn(first), lease_owner=owner)
    return Taken(taken, previous if running and previous not in (None, owner) else None)


def held(row: Any) -> Held:
    return Held(row["id"], row["conversation_id"], bool(row["stop_requested"]))
