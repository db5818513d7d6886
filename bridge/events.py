"""The neutral inbound event every adapter produces."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ThreadKey:
    """Where a conversation lives on its platform; one key is one Open WebUI chat."""

    platform: str  # "slack", "discord", "console", …
    workspace: str  # Slack team id, Discord guild id ("" for DMs / console)
    channel: str
    thread: str  # thread ts / thread id / console thread name


@dataclass(frozen=True)
class ContextMessage:
    """An earlier message of the thread, given to the model when the bot joins late."""

    author_name: str
    text: str
    from_bot: bool = False


@dataclass(frozen=True)
class FileRef:
    """A file sent with a question, as its platform describes it (nothing downloaded yet)."""

    id: str  # the platform's file id (Slack file id, Discord attachment id): one upload per thread
    name: str
    mimetype: str = ""  # "" when the platform does not say
    size: int = 0  # bytes as the platform reports them (0: not said)
    url: str = ""  # where the adapter downloads it from; never carries a token
    problem: str = ""  # why it cannot be read, when the adapter knows before downloading


@dataclass(frozen=True)
class PlatformEvent:
    event_id: str  # the platform's delivery id: duplicates of one delivery share it
    thread: ThreadKey
    message_id: str  # the platform message that asks the question
    author_id: str
    author_name: str  # shown with the question when set, so speakers can be told apart
    text: str
    context: tuple[ContextMessage, ...] = field(default=())
    model: str | None = None  # overrides the configured default model
    # Where the question stands in its thread in the platform's own order (Slack ts,
    # Discord snowflake), as a key that sorts as text; "" keeps arrival order.
    order: str = ""
    # The bot joins a thread it was not in: ``Platform.prepare`` fetches the earlier messages.
    needs_context: bool = False
    files: tuple[FileRef, ...] = ()  # files sent with the question, read by the turn
    # The channel the per-channel rules and the Open WebUI folder follow: a thread's
    # parent channel ("" = ``thread.channel``). ``direct``: a DM (one folder per platform).
    place: str = ""
    direct: bool = False
    # Filled in by ``Platform.prepare``: the place as people know it ("#support",
    # "server, #help") and a link that opens the thread on the platform.
    place_name: str = ""
    link: str = ""
    # Set on a regenerate turn: the id of the turn whose question gets another answer,
    # and the platform message that asked it (the turn's ``message_id`` is its own).
    regenerates: int = 0
    question_message_id: str = ""
    # Set on an edit turn: the id of the turn whose question was edited after it was
    # answered (or while it was); the new question goes beside it, the answer in its messages.
    edits: int = 0

    @property
    def channel(self) -> str:
        """The channel whose rules apply."""
        return self.place or self.thread.channel

    @property
    def asked_in(self) -> str:
        """The platform message that asked the question."""
        return self.question_message_id or self.message_id

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str) -> PlatformEvent:
        raw: dict[str, Any] = json.loads(data)
        raw["thread"] = ThreadKey(**raw["thread"])
        raw["context"] = tuple(ContextMessage(**m) for m in raw.get("context") or ())
        raw["files"] = tuple(FileRef(**f) for f in raw.get("files") or ())
        raw.pop("attachments", None)  # the old count, stored before files were read
        if raw.get("regenerates") and not raw.get("question_message_id"):
            # Stored before the field existed: the id was "<question>~<delivery>".
            raw["question_message_id"] = str(raw["message_id"]).partition("~")[0]
        return cls(**raw)


def order_key(number: int | str, width: int = 24) -> str:
    """A platform's numeric position (a snowflake, a Slack ts) as text that sorts
    like the number: zero-padded integer part, fraction kept."""
    whole, _, fraction = str(number).partition(".")
    return whole.zfill(width) + ("." + fraction if fraction else "")
