# ruff: noqa: F401, F811  (the fixtures of test_intake, imported)
"""Edited and deleted questions (``Bridge.edit`` / ``Bridge.retract``) over an
in-memory store and the fake Open WebUI: queued questions answered as edited or
not at all, an answered newest question edited into a sibling branch shown in
the old answer's messages, older questions refused with a note."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from bridge.errors import QuestionRefused
from bridge.events import PlatformEvent
from bridge.intake import EDIT_LATEST_ONLY
from bridge.policy import AccessPolicy, Asker, Limits
from bridge.store import TurnStatus
from tests import treecheck
from tests.bridge.test_intake import (
    BridgeMaker,
    Setup,
    each,
    make_any,
    make_bridge,
    question,
    s,
    submit,
    tree_ok,
    until,
)

pytestmark = pytest.mark.timeout(20)


def edit(message_id: str, text: str, event_id: str, **extra: Any) -> PlatformEvent:
    """The platform's edit of ``message_id``: the new text under its own delivery id."""
    return question(text, message_id=message_id, event_id=event_id, **extra)


async def test_a_question_edited_while_queued_is_answered_as_edited(each: Setup) -> None:
    s = each
    s.fake.hold()
    first = await submit(s, question("q1", order="1"))
    a1 = await s.fake.next_held()
    queued = await submit(s, question("q2", order="2"))
    edited = await s.bridge.edit(edit("q2", "q2 as meant", "ev-edit"))
    assert edited is not None
    # The same edit delivered again changes nothing.
    assert await s.bridge.edit(edit("q2", "q2 as meant", "ev-edit")) is None
    s.fake.auto()
    a1.finish("one")
    await first
    result = await queued
    assert result is await edited

    assert s.fake.questions == ["q1", "q2 as meant"]  # the old text never reached the chat
    assert s.platform.replies["q2"].final == "answer to q2 as meant"
    assert [t.status for t in await s.turns()] == [TurnStatus.DONE, TurnStatus.DONE]
    tree_ok(s, await s.chat_id())


async def test_the_answered_newest_question_edited_becomes_a_sibling_answered_in_place(
    each: Setup,
) -> None:
    s = each
    assert (await (await submit(s, question("q1")))).status is TurnStatus.DONE
    [answered] = await s.turns()
    await s.store.set_reply_ids(answered.id, ["reply-q1"])
    chat_id = await s.chat_id()
    old_question = answered.user_message_id

    pending = await s.bridge.edit(edit("q1", "q1 edited", "ev-edit"))
    assert pending is not None
    result = await pending
    assert result.status is TurnStatus.DONE
    assert await s.bridge.edit(edit("q1", "q1 edited", "ev-edit")) is None

    # The platform: the new answer in the old answer's messages, no second answer.
    [edit_turn] = [t for t in await s.turns() if t.id != answered.id]
    assert s.platform.given_ids[edit_turn.platform_message_id] == ("reply-q1",)
    assert s.platform.replies[edit_turn.platform_message_id].final == "answer to q1 edited"
    # Open WebUI: a sibling question (same parent as the old one) with its own answer.
    history = s.fake.history(chat_id)
    messages = history["messages"]
    new_question = messages[edit_turn.user_message_id]
    assert new_question["content"] == "q1 edited"
    assert new_question.get("parentId") == messages[old_question].get("parentId")
    assert messages[edit_turn.assistant_message_id]["parentId"] == edit_turn.user_message_id
    assert history["currentId"] == edit_turn.assistant_message_id
    assert messages[old_question]["childrenIds"] == [answered.assistant_message_id]  # kept
    tree_ok(s, chat_id)

    # The thread goes on under the new branch.
    assert (await (await submit(s, question("q2")))).status is TurnStatus.DONE
    path = treecheck.branch(s.fake.history(chat_id))
    assert [treecheck.answer_text(m) for m in path] == [
        "q1 edited",
        "answer to q1 edited",
        "q2",
        "answer to q2",
    ]


async def test_an_edit_of_an_older_question_gets_a_note_and_changes_nothing(s: Setup) -> None:
    assert (await (await submit(s, question("q1", order="1")))).status is TurnStatus.DONE
    assert (await (await submit(s, question("q2", order="2")))).status is TurnStatus.DONE
    with pytest.raises(QuestionRefused) as refused:
        await s.bridge.edit(edit("q1", "q1 edited", "ev-edit"))
    assert refused.value.notice == EDIT_LATEST_ONLY
    assert len(await s.turns()) == 2
    assert s.fake.questions == ["q1", "q2"]


async def test_a_question_deleted_while_queued_is_not_answered(each: Setup) -> None:
    s = each
    s.fake.hold()
    first = await submit(s, question("q1", order="1"))
    a1 = await s.fake.next_held()
    await submit(s, question("q2", order="2"))
    assert await s.bridge.retract(question("q2").thread, "q2") is True
    # A copy of its delivery arriving late is no question either.
    assert await s.bridge.submit(question("q2", event_id="ev-q2-again")) is None
    s.fake.auto()
    a1.finish("one")
    await first
    await until(lambda: s.bridge.idle)

    assert s.fake.questions == ["q1"]
    assert "q2" not in s.platform.replies
    assert [t.platform_message_id for t in await s.turns()] == ["q1"]


async def test_a_deleted_answered_question_stays_in_the_chat(s: Setup) -> None:
    assert (await (await submit(s, question("q1")))).status is TurnStatus.DONE
    assert await s.bridge.retract(question("q1").thread, "q1") is False
    assert [t.status for t in await s.turns()] == [TurnStatus.DONE]
    path = treecheck.branch(s.fake.history(await s.chat_id()))
    assert [treecheck.answer_text(m) for m in path] == ["q1", "answer to q1"]


async def test_a_question_edited_while_answered_is_stopped_and_answered_as_edited(
    s: Setup,
) -> None:
    s.fake.hold()
    first = await submit(s, question("q1"))
    a1 = await s.fake.next_held()
    a1.write("half an answer to the old text")
    await until(lambda: bool(s.platform.replies["q1"].updates))
    pending = await s.bridge.edit(edit("q1", "q1 edited", "ev-edit"))
    assert pending is not None
    assert (await first).status is TurnStatus.STOPPED
    s.fake.auto()
    assert (await pending).status is TurnStatus.DONE

    [_, new] = await s.turns()
    assert s.platform.given_ids[new.platform_message_id] == ("msg-q1",)  # in place
    assert s.platform.replies[new.platform_message_id].final == "answer to q1 edited"
    history = s.fake.history(await s.chat_id())
    assert history["currentId"] == new.assistant_message_id
    assert history["messages"][new.user_message_id].get("parentId") is None  # beside q1
    tree_ok(s, await s.chat_id())


async def test_a_refused_question_mended_by_an_edit_is_answered(make_bridge: BridgeMaker) -> None:
    s = await make_bridge(limits=Limits(max_question_chars=12))
    with pytest.raises(QuestionRefused):
        await s.bridge.submit(question("a question far too long", message_id="m1"))
    pending = await s.bridge.edit(edit("m1", "short now", "ev-edit"))
    assert pending is not None
    assert (await pending).status is TurnStatus.DONE
    assert s.fake.questions == ["short now"]


async def test_an_edit_of_a_message_that_was_no_question_changes_nothing(s: Setup) -> None:
    assert await s.bridge.edit(edit("chatter", "hello", "ev-edit")) is None
    assert await s.store.get_conversation(question("x").thread) is None


async def test_edits_obey_the_access_rules_and_the_rate_limit(make_bridge: BridgeMaker) -> None:
    s = await make_bridge(
        limits=Limits(user_rate_limit=2),
        access=AccessPolicy(denied_users=frozenset({"u9"})),
    )
    assert (await (await submit(s, question("q1")))).status is TurnStatus.DONE
    denied = Asker(workspace="w", channel="c", user="u9")
    with pytest.raises(QuestionRefused):
        await s.bridge.edit(replace(edit("q1", "mine", "ev-e0"), author_id="u9"), denied)
    pending = await s.bridge.edit(edit("q1", "q1 edited", "ev-e1"))
    assert pending is not None
    await pending
    # u1 asked once and edited once this minute: a second edit is over the limit.
    with pytest.raises(QuestionRefused):
        await s.bridge.edit(edit("q1", "q1 edited again", "ev-e2"))
    assert s.fake.questions == ["q1", "q1 edited"]


async def test_an_edited_question_can_be_edited_again(s: Setup) -> None:
    assert (await (await submit(s, question("q1")))).status is TurnStatus.DONE
    for n in (1, 2):
        pending = await s.bridge.edit(edit("q1", f"q1 take {n}", f"ev-e{n}"))
        assert pending is not None
        assert (await pending).status is TurnStatus.DONE
    history = s.fake.history(await s.chat_id())
    roots = [m for m in history["messages"].values() if m["role"] == "user"]
    assert sorted(m["content"] for m in roots) == ["q1", "q1 take 1", "q1 take 2"]
    assert all(m.get("parentId") is None for m in roots)
    tree_ok(s, await s.chat_id())


async def test_a_deleted_queued_question_is_not_counted_as_waiting(s: Setup) -> None:
    s.fake.hold()
    await submit(s, question("q1", order="1"))
    await s.fake.next_held()
    pending = await submit(s, question("q2", order="2"))
    assert await s.bridge.retract(question("q2").thread, "q2")
    assert pending.cancelled()
    await asyncio.sleep(0)


async def test_a_question_deleted_while_answered_stops_its_answer(s: Setup) -> None:
    s.fake.hold()
    pending = await submit(s, question("q1"))
    a1 = await s.fake.next_held()
    a1.write("half an answer")
    await until(lambda: bool(s.platform.replies["q1"].updates))
    assert await s.bridge.retract(question("q1").thread, "q1") is True
    assert (await pending).status is TurnStatus.STOPPED
    assert a1.stopped


async def test_an_edit_cut_off_by_a_restart_is_finished_in_place(
    make_bridge: BridgeMaker,
) -> None:
    old = await make_bridge()
    assert (await (await submit(old, question("q1")))).status is TurnStatus.DONE
    [answered] = await old.turns()
    await old.store.set_reply_ids(answered.id, ["reply-q1"])
    old.fake.hold()
    assert await old.bridge.edit(edit("q1", "q1 edited", "ev-edit")) is not None
    held = await old.fake.next_held()
    await old.bridge.drain(0)  # the bridge stops while the edit's answer is written
    held.finish("the edited answer")

    new = await make_bridge()
    new.fake.auto()
    assert await new.bridge.resume("test") == 1
    await until(lambda: new.bridge.idle, timeout=5)
    [_, edit_turn] = await new.turns()
    assert edit_turn.status is TurnStatus.DONE
    assert new.platform.given_ids[edit_turn.platform_message_id] == ("reply-q1",)
    assert new.platform.replies[edit_turn.platform_message_id].final == "the edited answer"
    history = new.fake.history(await new.chat_id())
    assert history["currentId"] == edit_turn.assistant_message_id
    tree_ok(new, await new.chat_id())
