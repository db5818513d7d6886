"""Which messages of a thread belong to which answer: message metadata, and finding a
message whose post lost its answer.

Every message a reply posts (and every edit of it) carries Slack message metadata
naming the turn and the part::

    {"event_type": "owui_bridge_reply", "event_payload": {"turn": "…", "part": 0}}

When ``chat.postMessage`` or ``chat.startStream`` gets no answer (a connection error, a
timeout, a 5xx), Slack may or may not have made the message. The reply marks the part
``UNCERTAIN`` (also in the ids it stores, so a restart knows) and, before posting it
again, reads the thread after the question (``conversations.replies`` with
``include_all_metadata``) and adopts the message it finds. ``chat.startStream`` takes no
metadata: a stream whose start lost its answer is the bot's one message after the
question that carries none (only one answer of a thread is written at a time, and
every other message the bridge touches carries metadata).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError

from bridge.events import order_key

EVENT_TYPE = "owui_bridge_reply"
# Stored in place of a message id: the part's post lost its answer (``STREAM``: it was
# a chat.startStream, which carries no metadata).
UNCERTAIN = "?"
UNCERTAIN_STREAM = "?stream"
MARKERS = frozenset({UNCERTAIN, UNCERTAIN_STREAM})
PAGE = 200  # messages per conversations.replies page
MAX_PAGES = 10  # an answer's messages follow its question closely


def metadata(turn: str, part: int) -> dict[str, Any]:
    return {"event_type": EVENT_TYPE, "event_payload": {"turn": turn, "part": part}}


def lost(exc: BaseException) -> bool:
    """The call's fate is unknown: Slack may have done it (no answer, or a 5xx)."""
    if isinstance(exc, SlackApiError):
        status = getattr(exc.response, "status_code", 200)
        return isinstance(status, int) and status >= 500
    return isinstance(exc, aiohttp.ClientError | TimeoutError | OSError)


@dataclass(frozen=True)
class Found:
    """The reply's messages in the thread after its question."""

    parts: dict[int, str]  # part number: ts
    unmarked: list[str]  # the bot's messages without the bridge's metadata, oldest first


def read(messages: list[dict[str, Any]], turn: str, bot_user: str, after: str) -> Found:
    """What of ``turn`` a page of ``conversations.replies`` holds (messages after ``after``)."""
    parts: dict[int, str] = {}
    unmarked: list[str] = []
    for message in messages:
        ts = str(message.get("ts") or "")
        if not ts or (after and order_key(ts) <= order_key(after)):
            continue  # the question, the thread's parent, anything older
        meta = message.get("metadata")
        if isinstance(meta, dict) and meta.get("event_type") == EVENT_TYPE:
            payload = meta.get("event_payload")
            if isinstance(payload, dict) and str(payload.get("turn")) == turn:
                part = payload.get("part")
                if isinstance(part, int) and part not in parts:
                    parts[part] = ts
        elif bot_user and message.get("user") == bot_user and message.get("bot_id"):
            unmarked.append(ts)
    return Found(parts, unmarked)
