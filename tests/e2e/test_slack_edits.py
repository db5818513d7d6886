# ruff: noqa: F811  (make: the fixture of test_slack, imported)
"""Edited and deleted questions on Slack end to end: a real Bolt app, the local Slack
server, the real core, real Open WebUI and SQLite. Judged by what a person sees in
the thread and by the Open WebUI chat."""

from __future__ import annotations

import asyncio

import pytest

from bridge.intake import EDIT_LATEST_ONLY
from tests import treecheck
from tests.contract.bridge_fixtures import history_of
from tests.e2e.test_slack import (  # noqa: F401
    ALICE,
    CHANNEL,
    Harness,
    Make,
    chat_for,
    make,
)
from tests.fakes.slack_server import BOT_USER_ID
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI

pytestmark = pytest.mark.timeout(120)

MENTION = f"<@{BOT_USER_ID}>"
SLOW = "[[words=40]] [[delay=0.05]]"


def user_questions(openwebui: RunningOpenWebUI, h: Harness) -> list[str]:
    history = history_of(chat_for(openwebui, h))
    assert treecheck.problems(history) == []
    return [m["content"] for m in history["messages"].values() if m["role"] == "user"]


async def test_an_answered_question_edited_is_answered_again_in_place(
    openwebui: RunningOpenWebUI, make: Make
) -> None:
    async with make("http") as h:
        thread = await h.say(CHANNEL, ALICE, f"{MENTION} what is the plan?")
        [answer] = await h.answers(CHANNEL, thread, 1)
        await h.deliver(h.fake.unfurl(CHANNEL, thread))  # a link preview: no edit
        await h.deliver(h.fake.user_edits(CHANNEL, thread, f"{MENTION} the plan for Monday?"))
        new = expected_reply("Alice: the plan for Monday?")
        await h.fake.wait_for(
            lambda: (
                [m.text for m in h.fake.bot_replies(CHANNEL, thread)] == [new]
                and h.runtime.bridge.idle
            ),
            timeout=60,
            what="the answer replaced",
        )
        [edited] = h.fake.bot_replies(CHANNEL, thread)
        assert edited.ts == answer.ts  # the same message, no second answer
        history = history_of(chat_for(openwebui, h))
        assert treecheck.problems(history) == []
        questions = [m for m in history["messages"].values() if m["role"] == "user"]
        assert sorted(m["content"] for m in questions) == [
            "Alice: the plan for Monday?",
            "Alice: what is the plan?",
        ]
        assert all(m.get("parentId") is None for m in questions)  # siblings: "2/2"

        await h.say(CHANNEL, ALICE, "and Tuesday?", thread_ts=thread)
        await h.answers(CHANNEL, thread, 2)
        path = treecheck.branch(history_of(chat_for(openwebui, h)))
        assert [m["content"] for m in path if m["role"] == "user"] == [
            "Alice: the plan for Monday?",
            "Alice: and Tuesday?",
        ]


async def test_a_question_edited_while_queued_is_answered_as_edited(
    openwebui: RunningOpenWebUI, make: Make
) -> None:
    async with make("http") as h:
        thread = await h.say(CHANNEL, ALICE, f"{MENTION} first {SLOW}")
        await _writing(h, thread)
        waiting = await h.say(CHANNEL, ALICE, "the old wording", thread_ts=thread)
        await h.deliver(h.fake.user_edits(CHANNEL, waiting, "the new wording"))
        replies = await h.answers(CHANNEL, thread, 2)
        assert replies[1].text == expected_reply("Alice: the new wording")
        assert "Alice: the old wording" not in user_questions(openwebui, h)


async def test_an_edit_of_an_older_question_gets_a_note(
    openwebui: RunningOpenWebUI, make: Make
) -> None:
    async with make("http") as h:
        thread = await h.say(CHANNEL, ALICE, f"{MENTION} one")
        await h.answers(CHANNEL, thread, 1)
        await h.say(CHANNEL, ALICE, "two", thread_ts=thread)
        before = [m.text for m in await h.answers(CHANNEL, thread, 2)]
        await h.deliver(h.fake.user_edits(CHANNEL, thread, f"{MENTION} one, edited"))
        await h.fake.wait_for(
            lambda: bool(h.fake.ephemerals_to(ALICE)), timeout=30, what="the note"
        )
        assert [e.text for e in h.fake.ephemerals_to(ALICE)] == [EDIT_LATEST_ONLY]
        await asyncio.sleep(0.5)
        assert [m.text for m in h.fake.bot_replies(CHANNEL, thread)] == before
        assert "Alice: one, edited" not in user_questions(openwebui, h)


async def test_a_question_deleted_while_queued_is_not_answered(
    openwebui: RunningOpenWebUI, make: Make
) -> None:
    async with make("http") as h:
        thread = await h.say(CHANNEL, ALICE, f"{MENTION} first {SLOW}")
        await _writing(h, thread)
        waiting = await h.say(CHANNEL, ALICE, "never mind this", thread_ts=thread)
        await h.deliver(h.fake.user_deletes(CHANNEL, waiting))
        await h.answers(CHANNEL, thread, 1)
        await asyncio.sleep(1.0)  # a second answer would show by now
        assert len(h.fake.bot_replies(CHANNEL, thread)) == 1
        assert "Alice: never mind this" not in user_questions(openwebui, h)


async def _writing(h: Harness, thread: str) -> None:
    """Until the bot's answer in ``thread`` shows (it is being written)."""
    await h.fake.wait_for(
        lambda: bool(h.fake.bot_replies(CHANNEL, thread)), timeout=30, what="an answer started"
    )
