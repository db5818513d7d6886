"""The independent tree checker: each broken shape is reported, sound ones pass."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests import treecheck


def msg(mid: str, parent: str | None, children: list[str], role: str, **extra: Any) -> Any:
    base: dict[str, Any] = {"id": mid, "parentId": parent, "childrenIds": children, "role": role}
    if role == "assistant":
        base["done"] = True
    return base | extra


def chat(*messages: dict[str, Any], current: str | None = None) -> dict[str, Any]:
    by_id = {m["id"]: m for m in messages}
    return {"currentId": current or messages[-1]["id"], "messages": by_id}


def two_turns() -> dict[str, Any]:
    return chat(
        msg("q1", None, ["a1"], "user", content="one"),
        msg("a1", "q1", ["q2"], "assistant", content="answer one"),
        msg("q2", "a1", ["a2"], "user", content="two"),
        msg("a2", "q2", [], "assistant", content="answer two"),
    )


def forked() -> dict[str, Any]:
    """A second question under a1 (another client continued the chat): still sound."""
    h = two_turns()
    h["messages"]["a1"]["childrenIds"].append("q3")
    h["messages"]["q3"] = msg("q3", "a1", ["a3"], "user")
    h["messages"]["a3"] = msg("a3", "q3", [], "assistant")
    return h


def edit(
    change: Callable[[dict[str, Any]], object],
    base: Callable[[], dict[str, Any]] = two_turns,
) -> dict[str, Any]:
    h = base()
    change(h)
    return h


def with_system() -> dict[str, Any]:
    return chat(
        msg("s", None, ["q1"], "system"),
        msg("q1", "s", ["a1"], "user"),
        msg("a1", "q1", [], "assistant"),
    )


SOUND = {
    "two turns": two_turns(),
    "fork, current on the old branch": forked(),
    "fork, current on the new branch": {**forked(), "currentId": "a3"},
    "system message first": with_system(),
    "current on a question": {**two_turns(), "currentId": "q2"},
}


@pytest.mark.parametrize("history", SOUND.values(), ids=SOUND.keys())
def test_sound_histories_pass(history: dict[str, Any]) -> None:
    assert treecheck.problems(history) == []


BROKEN: dict[str, tuple[dict[str, Any], str]] = {
    "no messages mapping": ({"currentId": None}, "no messages"),
    "two roots": (
        edit(lambda h: h["messages"]["a2"].update(parentId=None)),
        "exactly one root",
    ),
    "no root (cycle)": (
        edit(lambda h: h["messages"]["q1"].update(parentId="a2")),
        "exactly one root",
    ),
    "parent missing": (
        edit(lambda h: h["messages"]["q2"].update(parentId="gone")),
        "parent gone does not exist",
    ),
    "parent does not list the child": (
        edit(lambda h: h["messages"]["a1"].update(childrenIds=[])),
        "q2: parent a1 does not list it",
    ),
    "child missing": (
        edit(lambda h: h["messages"]["a2"].update(childrenIds=["ghost"])),
        "child ghost does not exist",
    ),
    "child points elsewhere": (
        edit(lambda h: h["messages"]["q1"].update(childrenIds=["a1", "q2"])),
        "q1: child q2 points to another parent",
    ),
    "child listed twice": (
        edit(lambda h: h["messages"]["q1"].update(childrenIds=["a1", "a1"])),
        "lists a child twice",
    ),
    "key is not the id": (
        edit(lambda h: h["messages"]["a2"].update(id="other")),
        "a2: stored under a key",
    ),
    "currentId missing": (edit(lambda h: h.update(currentId="nope")), "currentId 'nope'"),
    "currentId None": (edit(lambda h: h.update(currentId=None)), "currentId None"),
    "two questions in a row": (
        chat(
            msg("q1", None, ["q2"], "user"),
            msg("q2", "q1", ["a2"], "user"),
            msg("a2", "q2", [], "assistant"),
        ),
        "q2: shown as 'user' where a assistant belongs",
    ),
    "answer first": (
        chat(msg("a1", None, ["q1"], "assistant"), msg("q1", "a1", [], "user")),
        "a1: shown as 'assistant' where a user belongs",
    ),
    "system message later": (
        chat(
            msg("q1", None, ["s"], "user"),
            msg("s", "q1", ["a1"], "system"),
            msg("a1", "s", [], "assistant"),
        ),
        "s: shown as 'system'",
    ),
    "answer not done": (edit(lambda h: h["messages"]["a2"].update(done=False)), "a2: answer"),
    "answer on a side branch not done": (
        edit(lambda h: h["messages"]["a3"].update(done=False), forked),
        "a3: answer not done",
    ),
    "message is not an object": (edit(lambda h: h["messages"].update(a2="x")), "a2: not a"),
}


@pytest.mark.parametrize(("history", "expected"), BROKEN.values(), ids=BROKEN.keys())
def test_broken_histories_are_reported(history: dict[str, Any], expected: str) -> None:
    found = treecheck.problems(history)
    assert any(expected in p for p in found), found


def test_unfinished_answer_allowed_when_not_required() -> None:
    h = edit(lambda h: h["messages"]["a2"].update(done=False))
    assert treecheck.problems(h, require_done=False) == []


def test_branch_is_root_to_current() -> None:
    assert [m["id"] for m in treecheck.branch(two_turns())] == ["q1", "a1", "q2", "a2"]
    assert [m["id"] for m in treecheck.branch({**forked(), "currentId": "a3"})] == [
        "q1",
        "a1",
        "q3",
        "a3",
    ]
    looped = edit(lambda h: h["messages"]["q1"].update(parentId="a2"))
    with pytest.raises(ValueError):
        treecheck.branch(looped)


def test_checker_does_not_change_the_history() -> None:
    h = forked()
    before = copy.deepcopy(h)
    treecheck.problems(h)
    treecheck.branch(h)
    assert h == before


def test_answer_text_reads_content_or_output() -> None:
    assert treecheck.answer_text({"content": "hi"}) == "hi"
    streaming = {
        "content": "",
        "output": [
            {"type": "reasoning", "content": [{"type": "output_text", "text": "hmm"}]},
            {"type": "message", "content": [{"type": "output_text", "text": "partial"}]},
        ],
    }
    assert treecheck.answer_text(streaming) == "partial"
