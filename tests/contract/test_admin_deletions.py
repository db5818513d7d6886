"""What admins delete in Open WebUI never ends a thread: a deleted chat is replaced
by a new one, and a deleted message is chained around (every release)."""

from __future__ import annotations

import sqlite3
import uuid

import pytest

from bridge.store import TurnStatus
from tests import treecheck
from tests.contract.bridge_fixtures import BridgeFactory, as_admin, ask, fetch_chat, history_of
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI

pytestmark = pytest.mark.every_release


def stored_chat_id(db: str) -> str | None:
    connection = sqlite3.connect(db)
    try:
        (chat_id,) = connection.execute("select chat_id from conversations").fetchone()
    finally:
        connection.close()
    return str(chat_id) if chat_id else None


@pytest.mark.parametrize("follow", ["events", "polling"])
async def test_a_chat_deleted_in_open_webui_is_replaced_by_a_new_one(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory, follow: str
) -> None:
    thread = f"deleted-{uuid.uuid4().hex[:8]}"
    async with make_bridge(follow) as runtime:
        _, first = await ask(runtime, "before the deletion", thread)
        assert first.chat_id is not None
        await as_admin(openwebui, "DELETE", f"/api/v1/chats/{first.chat_id}")

        # The next question is answered in a new chat, and the thread goes on there.
        replies = [await ask(runtime, q, thread) for q in ("after the deletion", "and then")]
        db = str(runtime.settings.bridge_database)

    for (reply, result), question in zip(replies, ("after the deletion", "and then"), strict=True):
        assert result.status is TurnStatus.DONE, reply.failure
        assert reply.final == expected_reply(question)
    new_chat = replies[0][1].chat_id
    assert new_chat is not None and new_chat != first.chat_id
    assert replies[1][1].chat_id == new_chat
    assert stored_chat_id(db) == new_chat
    history = history_of(fetch_chat(openwebui, new_chat))
    assert treecheck.problems(history) == []
    assert [m["content"] for m in treecheck.branch(history)[::2]] == [
        "after the deletion",
        "and then",
    ]


async def test_a_deleted_message_the_thread_chained_under_is_chained_around(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    thread = f"pruned-{uuid.uuid4().hex[:8]}"
    async with make_bridge() as runtime:
        turns = [await ask(runtime, q, thread) for q in ("one", "two")]
        chat_id = turns[0][1].chat_id
        assert chat_id is not None
        # The admin deletes the second question in the web UI: it goes with its answer,
        # and the chat's current message is the first answer again.
        chat = (await as_admin(openwebui, "GET", f"/api/v1/chats/{chat_id}"))["chat"]
        history = chat["history"]
        one, answer_one, two = treecheck.branch(history)[:3]
        if openwebui.release >= (0, 10):
            # The web UI's own delete: later releases merge a written history.
            await as_admin(openwebui, "DELETE", f"/api/v1/chats/{chat_id}/messages/{two['id']}")
        else:
            for gone in (two["id"], *two["childrenIds"]):
                del history["messages"][gone]
            history["messages"][answer_one["id"]]["childrenIds"] = []
            history["currentId"] = answer_one["id"]
            messages = [m for m in chat.get("messages", []) if m.get("id") in history["messages"]]
            await as_admin(
                openwebui,
                "POST",
                f"/api/v1/chats/{chat_id}",
                json={"chat": {"history": history, "messages": messages}},
            )
        assert two["id"] not in history_of(fetch_chat(openwebui, chat_id))["messages"]

        reply, result = await ask(runtime, "three", thread)

    assert result.status is TurnStatus.DONE, reply.failure
    assert reply.final == expected_reply("three")
    assert result.chat_id == chat_id
    history = history_of(fetch_chat(openwebui, chat_id))
    assert treecheck.problems(history) == []
    chain = treecheck.branch(history)
    assert [m["content"] for m in chain[::2]] == [one["content"], "three"]
