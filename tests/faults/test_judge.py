"""The faults judge itself: it must see a loss, a duplicate, a frozen half and a warning."""

from __future__ import annotations

from typing import Any

from tests.fakes.slack_server import Message
from tests.faults.judge import judge, tree_problems
from tests.harness.model_server import expected_reply

Q1, Q2 = "Alice: one [[words=5]]", "Alice: two [[words=5]]"
A1, A2 = expected_reply(Q1), expected_reply(Q2)


def _msg(ts: str, text: str, *, streaming: bool = False) -> Message:
    return Message("C1", ts, "UBOT", text, "1.0", "BBOT", streamed=True, streaming=streaming)


def test_clean_thread() -> None:
    verdict = judge([Q1, Q2], [_msg("1.1", A1), _msg("1.2", A2)])
    assert (verdict.answers, verdict.duplicates, verdict.lost, verdict.extra) == (2, 0, 0, 0)
    assert verdict.in_order and verdict.clean
    assert verdict.line("s", "0.12.4") == (
        "faults: s [owui-0.12.4] questions=2 answers=2 duplicates=0 lost=0 extra=0"
    )


def test_faults_are_counted() -> None:
    replies = [
        _msg("1.1", A1[:15]),  # frozen half of A1 …
        _msg("1.2", A1),  # … beside the recovered copy: extra
        _msg("1.3", A1),  # a second complete copy: duplicate
        _msg("1.4", "Sorry, that took too long."),  # a warning: extra
        _msg("1.5", A2, streaming=True),  # still streaming: not complete, so Q2 is lost
    ]
    verdict = judge([Q1, Q2], replies)
    assert (verdict.answers, verdict.duplicates, verdict.lost, verdict.extra) == (1, 1, 1, 2)
    assert not verdict.clean


def test_order_and_stopped_answers() -> None:
    verdict = judge([Q1, Q2], [_msg("1.1", A2), _msg("1.2", A1)])
    assert not verdict.in_order
    stopped = judge([Q1, Q2], [_msg("1.1", A1[:12]), _msg("1.2", A2)], partial_ok=(0,))
    assert stopped.clean and stopped.answers == 2


def test_tree_problems() -> None:
    good: dict[str, Any] = {
        "currentId": "a",
        "messages": {
            "q": {"id": "q", "parentId": None, "childrenIds": ["a"], "role": "user"},
            "a": {"id": "a", "parentId": "q", "childrenIds": [], "role": "assistant", "done": True},
        },
    }
    assert tree_problems(good) == []
    two_roots = {
        "currentId": "a",
        "messages": {**good["messages"], "r": {"id": "r", "parentId": None, "childrenIds": []}},
    }
    assert tree_problems(two_roots) != []
