"""What a reaction on an answer asks for, and where a conversation lives: pure
mappings, table-style."""

from __future__ import annotations

from dataclasses import replace

import pytest

from adapters.discord.places import DM_PLACE, jump_url, place_name
from adapters.discord.reactions import (
    Reaction,
    action_of,
    reacted_channel,
    regenerate_event_id,
    worth_handling,
)
from bridge.actions import Reacted

BOT = "900"


@pytest.mark.parametrize(
    ("name", "action"),
    [
        ("👍", Reacted.UP),
        ("👍🏽", Reacted.UP),  # a skin tone is the same vote
        ("👎", Reacted.DOWN),
        ("👎🏿", Reacted.DOWN),
        ("⏹", Reacted.STOP),
        ("⏹️", Reacted.STOP),  # with the emoji presentation selector, as Discord sends it
        ("🛑", Reacted.STOP),
        ("🔁", Reacted.REGENERATE),
        ("🔂", None),  # repeat once: not ours
        ("❤️", None),
        ("", None),
        (None, None),
    ],
)
def test_action_of(name: str | None, action: Reacted | None) -> None:
    assert action_of(name) is action


def test_a_custom_emoji_means_nothing_whatever_its_name() -> None:
    assert action_of("👍", custom=True) is None


def reaction(**fields: object) -> Reaction:
    base: dict[str, object] = {
        "action": Reacted.UP,
        "added": True,
        "user_id": "7",
        "channel_id": "300",
        "message_id": "600",
        "guild_id": "1",
        "emoji": "👍",
        "message_author_id": BOT,
    }
    return Reaction(**(base | fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("r", "handled"),
    [
        (reaction(), True),
        (reaction(added=False, message_author_id=""), True),  # a vote taken back
        (reaction(action=Reacted.DOWN, added=False, message_author_id=""), True),
        (reaction(action=Reacted.STOP), True),
        (reaction(action=Reacted.STOP, added=False, message_author_id=""), False),
        (reaction(action=Reacted.REGENERATE, added=False, message_author_id=""), False),
        (reaction(user_id=BOT), False),  # the bridge's own
        (reaction(from_bot=True), False),  # another bot
        (reaction(message_author_id="7"), False),  # on a person's message
        (reaction(guild_id="", message_author_id=""), True),  # author unknown: the core checks
    ],
)
def test_worth_handling(r: Reaction, handled: bool) -> None:
    assert worth_handling(r, BOT) is handled


def test_a_regenerate_is_one_event_per_answer_version() -> None:
    again = reaction(action=Reacted.REGENERATE, emoji="🔁")
    first = regenerate_event_id(again, 1000)
    assert first == regenerate_event_id(again, 1000)  # a replayed delivery: the same event
    assert first != regenerate_event_id(again, 2000)  # after the answer changed: a new one
    assert first != regenerate_event_id(replace(again, user_id="8"), 1000)
    assert first.startswith("reaction:300:600:7:")
    assert reacted_channel(first) == "300"  # where the new answer goes
    assert reacted_channel("300:600") is None  # a question's delivery id


def test_place_names_and_links() -> None:
    assert place_name("Lab", "help") == "Lab \u203a #help"
    assert DM_PLACE == "DMs"
    assert jump_url("1", "300") == "https://discord.com/channels/1/300"
    assert jump_url("", "42") == "https://discord.com/channels/@me/42"
    assert jump_url("1", "100", "500") == "https://discord.com/channels/1/100/500"
