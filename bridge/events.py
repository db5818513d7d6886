"""The neutral inbound event every adapter produces."""

from __future__ import annotations

from dataclasses import dataclass, field


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
class PlatformEvent:
    event_id: str  # the platform's delivery id: duplicates of one delivery share it
    thread: ThreadKey
    message_id: str  # the platform message that asks the question
    author_id: str
    author_name: str  # shown with the question when set, so speakers can be told apart
    text: str
    context: tuple[ContextMessage, ...] = field(default=())
    model: str | None = None  # overrides the configured default model
