"""Which reactions mean something to the bridge, on Slack's event shapes."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.slack.reactions import parse, wanted
from bridge.actions import Reacted, act_of

BOT = "UBOT"


def body(kind: str = "reaction_added", **event: Any) -> dict[str, Any]:
    base = {
        "type": kind,
        "user": "U1",
        "reaction": "+1",
        "item_user": BOT,
        "item": {"type": "message", "channel": "C1", "ts": "5.000100"},
        "event_ts": "6.000200",
    }
    return {"team_id": "T1", "event": base | event}


@pytest.mark.parametrize(
    ("name", "action", "vote"),
    [
        ("+1", Reacted.UP, 1),
        ("thumbsup", Reacted.UP, 1),
        ("+1::skin-tone-3", Reacted.UP, 1),  # a skin tone means the same
        ("-1", Reacted.DOWN, -1),
        ("thumbsdown::skin-tone-6", Reacted.DOWN, -1),
        ("black_square_for_stop", Reacted.STOP, 0),
        ("stop_button", Reacted.STOP, 0),
        ("repeat", Reacted.REGENERATE, 0),
        ("tada", None, None),
        ("repeat_one", None, None),
    ],
)
def test_reaction_names(name: str, action: Reacted | None, vote: int | None) -> None:
    reaction = parse(body(reaction=name))
    assert reaction is not None
    assert reaction.action is action
    if action is not None:
        acting = act_of(action, True)
        assert acting is not None and acting[1] == vote


def test_fields_and_a_stable_event_id() -> None:
    reaction = parse(body(user_team="T9"))
    removed = parse(body("reaction_removed"))
    assert reaction is not None and removed is not None
    assert (reaction.team, reaction.user, reaction.channel, reaction.ts) == (
        "T1",
        "U1",
        "C1",
        "5.000100",
    )
    assert (reaction.removed, removed.removed) == (False, True)
    assert reaction.user_team == "T9"
    # Slack's retries of one delivery carry the same event_ts: one id for all of them.
    assert reaction.event_id == "reaction:C1:5.000100:U1:6.000200"
    assert parse(body(user_team="T9")) == reaction


@pytest.mark.parametrize(
    "payload",
    [
        body(item={"type": "file", "file": "F1"}),  # not on a message
        body(item={"type": "message", "channel": "C1"}),  # no ts
        body(user=None),
        body(reaction=""),
        {"event": {"type": "message", "text": "hi"}},
        {"event": "nonsense"},
    ],
)
def test_not_a_reaction_on_a_message(payload: dict[str, Any]) -> None:
    assert parse(payload) is None


@pytest.mark.parametrize(
    ("payload", "want"),
    [
        (body(), True),
        (body(item_user=None), True),  # Slack left the author out: the core decides
        (body(item_user="U2"), False),  # a person's message: never an answer
        (body(user=BOT), False),  # the bot's own reaction
        (body(reaction="tada"), False),
        (body("reaction_removed", reaction="-1"), True),  # a rating taken back
        (body("reaction_removed", reaction="repeat"), False),  # nothing to undo
        (body("reaction_removed", reaction="black_square_for_stop"), False),
    ],
)
def test_wanted(payload: dict[str, Any], want: bool) -> None:
    reaction = parse(payload)
    assert reaction is not None
    assert wanted(reaction, BOT) is want
