"""Which Discord messages the bridge answers, and in which conversation. Pure: no I/O.

``from_message`` reads what a ``MESSAGE_CREATE`` already carries (author,
mention objects, the cached channel) into a plain ``DiscordMessage``;
``decide`` maps it to an answer or not:

* a server text channel, the bot mentioned → a new thread from that message
  (thread id == message id, so the key is known before any call); in a channel
  whose ``respond_to`` is "all", every top-level message does, mention or not;
* a thread (or forum post) the bridge knows → its next question, mention or not;
* a thread it does not know, the bot mentioned → the bot joins, with the
  thread's earlier messages as context;
* a DM → the DM channel's conversation (``/new`` starts a new chat there);
* a channel whose ``respond_to`` is "off" → nothing, in it or in its threads
  (DMs follow ``BRIDGE_ALLOW_DMS`` instead).

Bots (the bridge itself included), webhooks and system messages are never
questions. Neither is a message with no text and no files, unless it mentions
the bot: that bare mention goes to the core, which refuses it with a hint. A
message with files and no text is a question like one with text (its files are
``FileRef``s, see ``adapters.discord.files``). Edits and deletions are read by
``adapters.discord.changes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import discord

from adapters.discord.files import file_refs
from adapters.discord.text import Names, strip_leading_mention
from bridge.channels import RespondTo
from bridge.events import FileRef, PlatformEvent, ThreadKey, order_key

PLATFORM = "discord"
# MessageType.default and MessageType.reply: a person writing; every other type
# (joins, pins, thread starters, boosts, …) is a system message.
QUESTION_TYPES = frozenset({0, 19})


class ChannelKind(Enum):
    DM = "dm"
    CHANNEL = "channel"  # a server text (or announcement) channel: threads open from messages
    THREAD = "thread"  # a thread or forum post
    UNKNOWN = "unknown"  # a server channel discord.py has not cached (e.g. an old thread)
    OTHER = "other"  # voice chat, stage, group DM: not served


_KINDS = {
    discord.ChannelType.private: ChannelKind.DM,
    discord.ChannelType.text: ChannelKind.CHANNEL,
    discord.ChannelType.news: ChannelKind.CHANNEL,
    discord.ChannelType.public_thread: ChannelKind.THREAD,
    discord.ChannelType.private_thread: ChannelKind.THREAD,
    discord.ChannelType.news_thread: ChannelKind.THREAD,
}


def channel_kind(channel_type: discord.ChannelType | None, in_guild: bool) -> ChannelKind:
    if channel_type is None:
        return ChannelKind.UNKNOWN if in_guild else ChannelKind.DM
    return _KINDS.get(channel_type, ChannelKind.OTHER)


@dataclass(frozen=True)
class DiscordMessage:
    id: str
    channel_id: str
    guild_id: str  # "" in DMs
    kind: ChannelKind
    author_id: str
    author_name: str
    content: str
    type: int = 0  # MessageType value
    from_bot: bool = False  # a bot (the bridge included) or Discord's system user
    webhook_id: str | None = None
    mentions_bot: bool = False  # the bot's user or its own role is mentioned
    bot_mention_ids: frozenset[str] = frozenset()  # ids that mean the bot: user, own role
    names: Names = field(default_factory=Names)
    files: tuple[FileRef, ...] = ()  # the message's attachments

    @property
    def question(self) -> str:
        """The text asked: the content without the bot's opening mention."""
        return strip_leading_mention(self.content, self.bot_mention_ids)

    @property
    def delivery_id(self) -> str:
        """The event id: the message's own channel and id. A resume replay carries the
        same; the channel part is where the message can be fetched (and a thread opened
        from it) after a restart."""
        return f"{self.channel_id}:{self.id}"


def order_of(message: DiscordMessage) -> str:
    """Where the message stands in its thread: Discord's snowflake order."""
    return order_key(int(message.id))


def is_question(message: DiscordMessage) -> bool:
    """A person wrote to be answered: text, files, or a bare mention (which the core
    answers with a hint). A sticker alone, say, is not a question."""
    return (
        not message.from_bot
        and message.webhook_id is None
        and message.type in QUESTION_TYPES
        and (bool(message.question.strip()) or bool(message.files) or message.mentions_bot)
    )


def thread_key(message: DiscordMessage) -> ThreadKey | None:
    """The conversation the message would belong to; None where the bot never answers."""
    if message.kind is ChannelKind.DM:
        return ThreadKey(PLATFORM, "", message.channel_id, message.channel_id)
    if message.kind is ChannelKind.CHANNEL:
        return ThreadKey(PLATFORM, message.guild_id, message.id, message.id)
    if message.kind in (ChannelKind.THREAD, ChannelKind.UNKNOWN):
        return ThreadKey(PLATFORM, message.guild_id, message.channel_id, message.channel_id)
    return None


@dataclass(frozen=True)
class Decision:
    answer: bool
    needs_context: bool = False  # the bot joins a thread it was not in


def decide(
    message: DiscordMessage, *, known_thread: bool, respond_to: RespondTo = "mentions"
) -> Decision:
    """Whether ``message`` is answered; ``respond_to`` is its channel's (a thread's
    parent's) setting."""
    if not is_question(message):
        return Decision(False)
    kind = message.kind
    if kind is ChannelKind.DM:
        return Decision(True)
    if respond_to == "off":
        return Decision(False)
    if kind is ChannelKind.CHANNEL:
        return Decision(message.mentions_bot or respond_to == "all")
    if kind in (ChannelKind.THREAD, ChannelKind.UNKNOWN) and known_thread:
        return Decision(True)
    if kind is ChannelKind.THREAD and message.mentions_bot:
        return Decision(True, needs_context=True)
    return Decision(False)


def question_message(event: PlatformEvent) -> str:
    """The id of the Discord message that asked ``event``'s question."""
    return event.asked_in


def source_channel(event: PlatformEvent) -> str:
    """The channel the question's message was posted in (see ``delivery_id``)."""
    channel, sep, _ = event.event_id.partition(":")
    return channel if sep else event.thread.channel


def thread_to_open(event: PlatformEvent) -> tuple[str, str] | None:
    """(channel, message) to open the event's thread from, when its message started
    it in a server channel; None for DMs and threads that already exist."""
    if event.regenerates:
        return None  # another answer to a question already answered in its thread
    channel = source_channel(event)
    key = event.thread
    if key.workspace and event.message_id == key.thread and channel != key.thread:
        return channel, event.message_id
    return None


def from_message(message: discord.Message, bot_id: int) -> DiscordMessage:
    """What the bridge needs of a delivered message (no I/O: what discord.py parsed)."""
    guild = message.guild
    guild_id = guild.id if guild is not None else getattr(message.channel, "guild_id", None)
    own_role = guild.self_role if guild is not None else None
    bot_ids = {str(bot_id)} | ({str(own_role.id)} if own_role is not None else set())
    mentioned = {str(user.id) for user in message.mentions} | {
        str(role.id) for role in message.role_mentions
    }
    channel_type = getattr(message.channel, "type", None)
    author = message.author
    return DiscordMessage(
        id=str(message.id),
        channel_id=str(message.channel.id),
        guild_id=str(guild_id) if guild_id is not None else "",
        kind=channel_kind(
            channel_type if isinstance(channel_type, discord.ChannelType) else None,
            in_guild=guild_id is not None,
        ),
        author_id=str(author.id),
        author_name=author.display_name,
        content=message.content,
        type=message.type.value,
        from_bot=author.bot or author.system,
        webhook_id=str(message.webhook_id) if message.webhook_id else None,
        mentions_bot=bool(mentioned & bot_ids),
        bot_mention_ids=frozenset(bot_ids),
        names=names_of(message),
        files=file_refs(message.attachments),
    )


def names_of(message: discord.Message) -> Names:
    """Readable names for the mentions in ``message``, from its own mention objects."""
    return Names(
        users={str(user.id): user.display_name for user in message.mentions},
        roles={str(role.id): role.name for role in message.role_mentions},
        channels={str(channel.id): channel.name for channel in message.channel_mentions},
    )
