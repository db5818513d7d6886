# ruff: noqa: F401, F811  (the fixtures of test_app, imported)
"""Slack's ``message_changed`` / ``message_deleted`` as the adapter hands them to the
core: a person's edit of a question (its own delivery id, the new text, judged as
its message), deletions, and the changes that are no edit (unfurls, bots)."""

from __future__ import annotations

import asyncio

from adapters.slack import changes
from adapters.slack.app import SlackAdapter
from bridge.events import ThreadKey
from tests.adapters.slack.test_app import FakeCore, adapter, clean_env, deliver
from tests.fakes.slack_server import BOT_ID, BOT_USER_ID, TEAM_ID, FakeSlack


def test_an_edit_reads_as_its_message_with_an_id_of_its_own(fake: FakeSlack) -> None:
    parent, _, _ = fake.user_says("C1", "U1", "<@UBOT> hi")
    ts, _, _ = fake.user_says("C1", "U1", "a follow-up", thread_ts=parent)
    first = changes.parse(fake.user_edits("C1", ts, "a follow-up, fixed"))
    second = changes.parse(fake.user_edits("C1", ts, "a follow-up, fixed twice"))
    assert isinstance(first, changes.Edited) and isinstance(second, changes.Edited)
    assert (first.message.ts, first.message.thread, first.message.user) == (ts, parent, "U1")
    assert first.message.text == "a follow-up, fixed"
    assert first.edit_id != second.edit_id  # each edit is one delivery of its own


def test_changes_that_are_no_edit_of_a_persons_text_are_ignored(fake: FakeSlack) -> None:
    ts, _, _ = fake.user_says("C1", "U1", "<@UBOT> see https://example.com")
    assert changes.parse(fake.unfurl("C1", ts)) is None
    same = fake.user_edits("C1", ts, "<@UBOT> see https://example.com")
    assert changes.parse(same) is None  # edited to the same text
    bot = fake.user_edits("C1", ts, "changed")
    bot["event"]["message"]["bot_id"] = BOT_ID  # the bridge's own answer, updated
    assert changes.parse(bot) is None


def test_a_deletion_names_the_message_and_its_thread(fake: FakeSlack) -> None:
    parent, _, _ = fake.user_says("C1", "U1", "<@UBOT> hi")
    ts, _, _ = fake.user_says("C1", "U1", "never mind", thread_ts=parent)
    assert changes.parse(fake.user_deletes("C1", ts)) == changes.Deleted(TEAM_ID, "C1", parent, ts)
    assert changes.parse(fake.user_deletes("C1", parent)) == changes.Deleted(
        TEAM_ID, "C1", parent, parent
    )


async def test_edits_and_deletions_reach_the_core_in_order(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, core = adapter
    parent, message, mention = fake.user_says("C1", "U1", f"<@{BOT_USER_ID}> hi")
    await deliver(fake, slack, message, mention)
    await fake.wait_for(lambda: len(core.events) == 1, what="the question")
    edit = fake.user_edits("C1", parent, f"<@{BOT_USER_ID}> hello")
    await deliver(fake, slack, edit, fake.unfurl("C1", parent))
    await deliver(fake, slack, fake.user_deletes("C1", parent))
    await fake.wait_for(lambda: bool(core.retracted), what="the deletion")

    [(edited, asker)] = core.edits
    assert (edited.message_id, edited.text, edited.thread.thread) == (parent, "hello", parent)
    assert edited.event_id != core.events[0].event_id
    assert asker is not None and asker.user == "U1"
    assert core.retracted == [(ThreadKey("slack", TEAM_ID, "C1", parent), parent)]


async def test_an_edit_refused_by_the_core_gets_its_note(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, core = adapter
    core.refuse["older"] = "Edits apply to the latest question."
    parent, message, mention = fake.user_says("C1", "U1", f"<@{BOT_USER_ID}> hi")
    await deliver(fake, slack, message, mention)
    await fake.wait_for(lambda: len(core.events) == 1, what="the question")
    await deliver(fake, slack, fake.user_edits("C1", parent, f"<@{BOT_USER_ID}> older"))
    await fake.wait_for(lambda: bool(fake.ephemerals), what="the note")
    assert [(e.user, e.text) for e in fake.ephemerals] == [
        ("U1", "Edits apply to the latest question.")
    ]


async def test_an_edit_in_a_channel_the_bot_does_not_answer_is_ignored(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, core = adapter
    ts, _, _ = fake.user_says("C1", "U1", "lunch anyone?")  # chatter, never a question
    await deliver(fake, slack, fake.user_edits("C1", ts, "lunch at noon?"))
    await asyncio.sleep(0.2)
    assert core.edits == []
