"""The invite URL an admin follows, and the intent check."""

from __future__ import annotations

from pathlib import Path

import discord

from adapters.discord.invite import PERMISSIONS, invite_url, message_content_granted

README = Path(__file__).parents[3] / "deploy" / "discord" / "README.md"
EXPECTED = (1 << 10) | (1 << 11) | (1 << 15) | (1 << 16) | (1 << 35) | (1 << 38)


def test_permission_integer() -> None:
    # view channels, send messages, attach files, read message history, create public
    # threads, send messages in threads: nothing more.
    assert PERMISSIONS.value == EXPECTED == 309237746688


def test_invite_url() -> None:
    assert invite_url(123) == (
        "https://discord.com/oauth2/authorize?client_id=123"
        "&scope=bot%20applications.commands&permissions=309237746688"
    )


def test_readme_states_the_same_number() -> None:
    assert str(EXPECTED) in README.read_text()


def test_message_content_intent() -> None:
    assert message_content_granted(discord.ApplicationFlags._from_value(1 << 18))
    assert message_content_granted(discord.ApplicationFlags._from_value(1 << 19))
    assert not message_content_granted(discord.ApplicationFlags._from_value(1 << 23))
