"""The message tree: turns link up, validation catches what the web UI would render wrongly."""

from __future__ import annotations

import pytest

from bridge.openwebui import tree


def three_turns() -> tuple[tree.History, list[str]]:
    history = tree.empty_history()
    parent = None
    ids = []
    for n in range(3):
        user = tree.user_message(f"u{n}", parent, f"question {n}", "m")
        answer = tree.assistant_placeholder(f"a{n}", f"u{n}", "m")
        history = tree.add_turn(history, user, answer)
        history = tree.with_message(history, f"a{n}", content=f"answer {n}", done=True)
        parent = f"a{n}"
        ids += [f"u{n}", f"a{n}"]
    return history, ids


def test_turns_form_one_linear_chain() -> None:
    history, ids = three_turns()
    assert [m["id"] for m in tree.branch(history, history["currentId"])] == ids
    assert history["currentId"] == "a2"
    assert history["messages"]["a0"]["childrenIds"] == ["u1"]
    assert history["messages"]["u1"]["parentId"] == "a0"
    assert tree.problems(history) == []


def test_add_turn_leaves_the_input_untouched() -> None:
    history, _ = three_turns()
    before = repr(history)
    tree.add_turn(
        history,
        tree.user_message("u9", "a2", "q", "m"),
        tree.assistant_placeholder("a9", "u9", "m"),
    )
    assert repr(history) == before


def test_branching_under_an_earlier_answer_keeps_other_branch() -> None:
    history, _ = three_turns()
    forked = tree.add_turn(
        history,
        tree.user_message("x", "a0", "other", "m"),
        tree.assistant_placeholder("y", "x", "m"),
    )
    assert forked["messages"]["a0"]["childrenIds"] == ["u1", "x"]
    assert forked["messages"]["a2"]["content"] == "answer 2"
    assert [m["id"] for m in tree.branch(forked, "y")] == ["u0", "a0", "x", "y"]


@pytest.mark.parametrize(
    ("user", "answer", "problem"),
    [
        (("u9", "missing"), ("a9", "u9"), "parent missing is not in the chat"),
        (("u0", "a2"), ("a9", "u0"), "message u0 already exists"),
        (("u9", "a2"), ("a9", "u0"), "the answer must hang under its question"),
    ],
)
def test_add_turn_refuses_broken_links(
    user: tuple[str, str], answer: tuple[str, str], problem: str
) -> None:
    history, _ = three_turns()
    with pytest.raises(tree.TreeInvalid, match=problem):
        tree.add_turn(
            history,
            tree.user_message(user[0], user[1], "q", "m"),
            tree.assistant_placeholder(answer[0], answer[1], "m"),
        )


def _broken(change: str) -> tree.History:
    history, _ = three_turns()
    messages = history["messages"]
    if change == "two roots":
        messages["a1"]["parentId"] = None
    elif change == "child not listed":
        messages["a1"]["childrenIds"] = []
    elif change == "missing child":
        messages["a2"]["childrenIds"] = ["ghost"]
    elif change == "current missing":
        history["currentId"] = "ghost"
    elif change == "not done":
        messages["a2"]["done"] = False
    return history


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("two roots", "expected one root, found 2"),
        ("child not listed", "parent a1 does not list child u2"),
        ("missing child", "lists missing child ghost"),
        ("current missing", "currentId ghost is not a message"),
        ("not done", "answer a2 is not done"),
    ],
)
def test_problems_names_each_defect(change: str, expected: str) -> None:
    found = tree.problems(_broken(change))
    assert any(expected in p for p in found), found
    with pytest.raises(tree.TreeInvalid):
        tree.check(_broken(change))


def test_unfinished_answer_allowed_when_not_required() -> None:
    assert tree.problems(_broken("not done"), require_done=False) == []


def test_completion_messages_skip_empty_placeholder() -> None:
    history, _ = three_turns()
    history = tree.add_turn(
        history,
        tree.user_message("u3", "a2", "q3", "m"),
        tree.assistant_placeholder("a3", "u3", "m"),
    )
    messages = tree.completion_messages(history, "a3")
    assert messages[-1] == {"role": "user", "content": "q3"}
    assert len(messages) == 7


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ({"content": "plain"}, "plain"),
        (
            {
                "content": "",
                "output": [
                    {"type": "reasoning", "content": [{"type": "output_text", "text": "no"}]},
                    {"type": "message", "content": [{"type": "output_text", "text": "a"}]},
                    {"type": "message", "content": [{"type": "output_text", "text": "b"}]},
                ],
            },
            "ab",
        ),
        ({}, ""),
    ],
)
def test_message_text(message: tree.Message, text: str) -> None:
    assert tree.message_text(message) == text


def test_history_fields_carry_the_current_branch() -> None:
    history, ids = three_turns()
    fields = tree.history_fields(history)
    assert [m["id"] for m in fields["messages"]] == ids
    assert fields["history"] is history
