"""How a conversation's place reads in Open WebUI: folder name, channel tag and
the link's label (pure; tests/contract/test_filing.py files real chats)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bridge.events import PlatformEvent, ThreadKey
from bridge.openwebui.filing import DM_PLACE, FilingState, place_of

BASE = PlatformEvent(
    event_id="e1",
    thread=ThreadKey("slack", "T1", "C0SUPPORT", "1700000000.000100"),
    message_id="1700000000.000100",
    author_id="U1",
    author_name="Alice",
    text="hi",
)


@pytest.mark.parametrize(
    ("key", "changes", "folder", "tag", "label"),
    [
        (BASE.thread, {"place_name": "#support"}, "Slack · #support", "support",
         "Slack thread · #support"),
        (ThreadKey("discord", "G1", "T99", "T99"),
         {"place": "C42", "place_name": "Acme › #help"},  # noqa: RUF001
         "Discord · Acme › #help", "Acme › help", "Discord thread · Acme › #help"),  # noqa: RUF001
        # DMs of a platform share one folder, whatever the adapter named them.
        (ThreadKey("slack", "T1", "D7", "1.2"), {"direct": True, "place_name": "@alice"},
         "Slack · DMs", "DMs", "Slack DM"),
        (ThreadKey("discord", "", "D8", "D8"), {"direct": True}, "Discord · DMs", "DMs",
         "Discord DM"),
        # A place the adapter did not name gets no folder (the console).
        (ThreadKey("console", "", "terminal", "console-1"), {}, None, None, "Console thread"),
    ],
)  # fmt: skip
def test_place_names(
    key: ThreadKey,
    changes: dict[str, object],
    folder: str | None,
    tag: str | None,
    label: str,
) -> None:
    event = replace(BASE, thread=key, **changes)  # type: ignore[arg-type]
    place = place_of(key, event)
    assert (place.folder_name, place.channel_tag, place.label) == (folder, tag, label)
    assert place.key == (DM_PLACE if event.direct else event.channel)
    assert (place.platform, place.workspace) == (key.platform, key.workspace)


def test_filing_state_is_per_chat() -> None:
    stored = {"chat": "c1", "folder": "f1", "tags": ["slack", "alice"], "linked": True}
    state = FilingState.load(stored, "c1")
    assert state.to_json() == stored
    # A conversation whose chat was replaced starts filing afresh.
    assert FilingState.load(stored, "c2") == FilingState(chat="c2")
    assert FilingState.load({}, "c1") == FilingState(chat="c1")
