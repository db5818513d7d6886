"""Which ``MESSAGE_UPDATE`` payloads are a person's edit of their text."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from adapters.discord import changes


def update(data: dict[str, Any], cached_content: str | None = None) -> Any:
    """A raw update as discord.py hands it over (only what ``edit_id`` reads)."""
    cached = None if cached_content is None else SimpleNamespace(content=cached_content)
    return SimpleNamespace(data=data, cached_message=cached, channel_id=10, message_id=20)


def test_an_edit_has_an_id_per_edited_timestamp() -> None:
    first = changes.edit_id(update({"content": "b", "edited_timestamp": "T1"}, "a"))
    second = changes.edit_id(update({"content": "c", "edited_timestamp": "T2"}))
    assert first == "10:20:edited:T1" and second == "10:20:edited:T2"


def test_updates_that_are_no_edit_of_the_text_have_none() -> None:
    # Embeds resolved: no edited_timestamp (never edited) ...
    assert changes.edit_id(update({"content": "see x.com", "edited_timestamp": None})) is None
    # ... or no content at all (a partial update) ...
    assert changes.edit_id(update({"embeds": [], "edited_timestamp": "T1"})) is None
    # ... or the text as the cache knows it (a preview on a message edited before).
    assert changes.edit_id(update({"content": "a", "edited_timestamp": "T1"}, "a")) is None
