"""A person's message edited or deleted in Slack (``message`` events with the
``message_changed`` / ``message_deleted`` subtypes). Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.slack import inbound
from adapters.slack.inbound import SlackMessage


@dataclass(frozen=True)
class Edited:
    message: SlackMessage  # the message as it reads now (its ts is the question's)
    edit_id: str  # one id per edit, shared by Slack's retries of its event


@dataclass(frozen=True)
class Deleted:
    team: str
    channel: str
    thread: str  # the thread the message was in (its own ts for a top-level one)
    ts: str


def parse(body: dict[str, Any]) -> Edited | Deleted | None:
    """The edit or deletion of a person's message, or None: other events, bots' and the
    bridge's own messages, and changes that leave the text as it was (link unfurls,
    language detection: Slack sends those as ``message_changed`` too, without ``edited``)."""
    event = body.get("event")
    if not isinstance(event, dict) or event.get("type") != "message":
        return None
    subtype = event.get("subtype")
    if subtype == "message_changed":
        return _edited(body, event)
    if subtype == "message_deleted":
        return _deleted(body, event)
    return None


def _edited(body: dict[str, Any], event: dict[str, Any]) -> Edited | None:
    now, before = event.get("message"), event.get("previous_message")
    if not isinstance(now, dict):
        return None
    edited = now.get("edited")
    edited_ts = edited.get("ts") if isinstance(edited, dict) else None
    if not edited_ts:
        return None  # not edited by a person (an unfurl added attachments)
    if isinstance(before, dict) and before.get("text") == now.get("text"):
        return None  # the text is as it was
    # The message as a ``message`` event of its own, so it is read as questions are.
    shape = {
        **now,
        "type": "message",
        "channel": event.get("channel"),
        "channel_type": event.get("channel_type"),
    }
    message = inbound.parse({**body, "event": shape})
    if message is None:
        return None  # a bot's message (the bridge's own answers among them)
    return Edited(message, f"{message.channel}:{message.ts}:edited:{edited_ts}")


def _deleted(body: dict[str, Any], event: dict[str, Any]) -> Deleted | None:
    ts = event.get("deleted_ts")
    before = event.get("previous_message")
    before = before if isinstance(before, dict) else {}
    if not ts or before.get("bot_id"):
        return None
    return Deleted(
        team=str(body.get("team_id") or event.get("team") or ""),
        channel=str(event.get("channel") or ""),
        thread=str(before.get("thread_ts") or ts),
        ts=str(ts),
    )
