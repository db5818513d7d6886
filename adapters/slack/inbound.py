"""Which Slack events the bridge answers, and for which thread. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.slack.files import file_refs
from bridge.channels import RespondTo
from bridge.events import FileRef

# Message subtypes that are still a person talking; every other subtype (edits,
# deletions, joins, bot messages) is not a question.
ANSWERED_SUBTYPES = {None, "file_share", "thread_broadcast"}


@dataclass(frozen=True)
class SlackMessage:
    team: str
    channel: str
    channel_type: str  # "channel", "group", "im", "mpim"
    user: str
    text: str
    ts: str
    thread_ts: str | None
    files: tuple[FileRef, ...] = ()  # files sent with the message, as Slack describes them
    # The author's home team as the event tells it (Slack Connect sets it): a
    # free hint that the author is external, before any look-up.
    user_team: str | None = None
    enterprise: str | None = None  # the Enterprise Grid org the event came through

    @property
    def thread(self) -> str:
        return self.thread_ts or self.ts

    @property
    def is_dm(self) -> bool:
        return self.channel_type == "im"

    @property
    def is_direct(self) -> bool:
        """A direct message for the access rules: a DM or a group DM (Slack lists both
        under "Direct messages"; neither is a channel an operator can list)."""
        return self.channel_type in ("im", "mpim")

    @property
    def delivery_id(self) -> str:
        """One id for one user message, shared by its ``message`` and ``app_mention``
        events and by Slack's retries of either."""
        return f"{self.channel}:{self.ts}"


def parse(body: dict[str, Any]) -> SlackMessage | None:
    """The person's message in an Events API body, or None if it is not one."""
    event = body.get("event")
    if not isinstance(event, dict) or event.get("type") not in ("message", "app_mention"):
        return None
    if event.get("bot_id") or event.get("subtype") not in ANSWERED_SUBTYPES:
        return None
    user, text, ts = event.get("user"), event.get("text"), event.get("ts")
    if not user or not ts:
        return None
    # Empty text still counts: a bare mention gets a hint; files alone are a question.
    channel = str(event.get("channel") or "")
    channel_type = event.get("channel_type") or ("im" if channel.startswith("D") else "channel")
    return SlackMessage(
        team=str(body.get("team_id") or event.get("team") or ""),
        channel=channel,
        channel_type=str(channel_type),
        user=str(user),
        text=str(text or ""),
        ts=str(ts),
        thread_ts=event.get("thread_ts"),
        files=file_refs(event.get("files")),
        user_team=_text(event.get("user_team") or event.get("source_team")),
        enterprise=_text(body.get("enterprise_id") or body.get("context_enterprise_id")),
    )


def _text(value: Any) -> str | None:
    return str(value) if value else None


def mentions(message: SlackMessage, bot_user_id: str) -> bool:
    return f"<@{bot_user_id}" in message.text


@dataclass(frozen=True)
class Decision:
    answer: bool
    needs_context: bool = False  # the bot joins an existing thread: give the model its history


def decide(
    message: SlackMessage,
    bot_user_id: str,
    *,
    known_thread: bool,
    respond_to: RespondTo = "mentions",
) -> Decision:
    """``respond_to`` is the channel's rule: "off" answers nothing there (not even a
    mention or a thread the bot is in), "all" also answers every top-level message.
    DMs follow ``BRIDGE_ALLOW_DMS`` instead, as on Discord."""
    if message.user == bot_user_id or (respond_to == "off" and not message.is_dm):
        return Decision(False)
    if known_thread:
        return Decision(True)
    if message.is_dm:
        # A DM thread the bridge never saw (e.g. from before it was installed) joins now.
        return Decision(True, needs_context=message.thread_ts is not None)
    if mentions(message, bot_user_id):
        return Decision(True, needs_context=message.thread_ts is not None)
    if (
        respond_to == "all"
        and message.thread_ts is None
        and (message.text.strip() or message.files)
    ):
        return Decision(True)  # a new top-level message opens its own thread
    return Decision(False)
