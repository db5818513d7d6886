# ruff: noqa: F811  (make: the fixture of test_discord, imported)
"""Edited and deleted questions on Discord end to end: the real discord.py client,
the local Discord server, the real core, real Open WebUI and SQLite. Judged by what
a person sees in the channel and the thread, and by the Open WebUI chat."""

from __future__ import annotations

import asyncio

import pytest

from bridge.intake import EDIT_LATEST_ONLY
from tests import treecheck
from tests.e2e.test_discord import (  # noqa: F401
    MENTION,
    Harness,
    Make,
    asked,
    chat_history,
    make,
)
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI

pytestmark = pytest.mark.timeout(120)

SLOW = "[[words=40]] [[delay=0.05]]"


async def test_an_answered_question_edited_is_answered_again_in_place(
    openwebui: RunningOpenWebUI, make: Make
) -> None:
    async with make() as h:
        question = h.mention("what is the plan?")
        thread = question.id
        [answer] = await h.answers(thread, [expected_reply(asked("what is the plan?"))])
        h.fake.embeds_resolved(question.id)  # a link preview: no edit
        h.fake.user_edits(question.id, f"{MENTION} what is the plan for Monday?")
        new = expected_reply(asked("what is the plan for Monday?"))
        [edited] = await h.answers(thread, [new])
        assert edited.id == answer.id  # the same message, replaced in place

        [chat_id] = h.chat_ids(thread)
        history = chat_history(openwebui, chat_id)
        questions = [m for m in history["messages"].values() if m["role"] == "user"]
        assert sorted(m["content"] for m in questions) == sorted(
            [asked("what is the plan?"), asked("what is the plan for Monday?")]
        )
        assert all(m.get("parentId") is None for m in questions)  # siblings: "2/2"

        h.fake.user_says(thread, h.ada, "and on Tuesday?")
        await h.answers(thread, [new, expected_reply(asked("and on Tuesday?"))])
        path = [m["content"] for m in _branch(openwebui, chat_id) if m["role"] == "user"]
        assert path == [asked("what is the plan for Monday?"), asked("and on Tuesday?")]


async def test_an_edit_that_drops_the_mention_still_edits_the_question(
    openwebui: RunningOpenWebUI, make: Make
) -> None:
    async with make() as h:
        question = h.mention("what is the plan?")
        await h.answers(question.id, [expected_reply(asked("what is the plan?"))])
        h.fake.user_edits(question.id, "what is the plan, bot?")
        await h.answers(question.id, [expected_reply(asked("what is the plan, bot?"))])


async def test_a_question_edited_while_queued_is_answered_as_edited(
    openwebui: RunningOpenWebUI, make: Make
) -> None:
    async with make() as h:
        thread = h.mention(f"first {SLOW}").id
        await _writing(h, thread)
        waiting = h.fake.user_says(thread, h.ada, "the old wording")
        h.fake.user_edits(waiting.id, "the new wording")
        await h.answers(
            thread,
            [expected_reply(asked(f"first {SLOW}")), expected_reply(asked("the new wording"))],
        )
        [chat_id] = h.chat_ids(thread)
        contents = [m["content"] for m in chat_history(openwebui, chat_id)["messages"].values()]
        assert asked("the old wording") not in contents


async def test_an_edit_of_an_older_question_gets_a_note(
    openwebui: RunningOpenWebUI, make: Make
) -> None:
    async with make() as h:
        thread = h.mention("one").id
        first = expected_reply(asked("one"))
        await h.answers(thread, [first])
        second = h.fake.user_says(thread, h.ada, "two")
        both = [first, expected_reply(asked("two"))]
        await h.answers(thread, both)
        h.fake.user_edits(thread, f"{MENTION} one, edited")  # the thread's first question
        await h.answers(h.general, [EDIT_LATEST_ONLY])  # a reply under the edited message
        await h.answers(thread, both)  # the thread is as it was
        assert second.content == "two"


async def test_a_question_deleted_while_queued_is_not_answered(
    openwebui: RunningOpenWebUI, make: Make
) -> None:
    async with make() as h:
        thread = h.mention(f"first {SLOW}").id
        await _writing(h, thread)
        waiting = h.fake.user_says(thread, h.ada, "never mind this")
        h.fake.delete(waiting.id)
        await h.answers(thread, [expected_reply(asked(f"first {SLOW}"))], settle=1.0)
        [chat_id] = h.chat_ids(thread)
        contents = [m["content"] for m in chat_history(openwebui, chat_id)["messages"].values()]
        assert asked("never mind this") not in contents


async def _writing(h: Harness, thread: str) -> None:
    """Until the bot's first answer in ``thread`` shows text (it is being written)."""
    for _ in range(600):
        if h.fake.bot_messages(thread):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no answer started")


def _branch(openwebui: RunningOpenWebUI, chat_id: str) -> list[dict[str, object]]:
    return treecheck.branch(chat_history(openwebui, chat_id))
