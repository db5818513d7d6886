"""Filing bridged chats in real Open WebUI servers (both versions): folders per
channel, tags, the link back to the platform thread, ratings from reactions,
and a regenerated answer as a sibling. Every check reads what the server then
holds, through the endpoints the web UI itself loads."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from adapters.runtime import Runtime
from bridge.openwebui import flows
from bridge.openwebui.organise import (
    FolderGone,
    FolderNameTaken,
    Organiser,
    Rater,
    Rating,
    tag_id,
)
from bridge.store import TurnStatus
from tests import treecheck
from tests.contract.bridge_fixtures import MODEL, BridgeFactory, ask, fetch_chat, history_of
from tests.harness.model_server import RemoteModelServer, ThreadedModelServer, expected_reply
from tests.harness.openwebui import RunningOpenWebUI

pytestmark = pytest.mark.every_release

THREAD_URL = "https://example.slack.com/archives/C0SUPPORT/p1700000000000100"
# Bridges here leave titles alone: a late generated title would look like a change.


def suffix() -> str:
    return uuid.uuid4().hex[:8]


def raw(server: RunningOpenWebUI, method: str, path: str, **kwargs: Any) -> Any:
    """A request as the web UI sends it (independent of the code under test)."""
    with server.client() as http:
        response = http.request(method, path, **kwargs)
    response.raise_for_status()
    return response.json()


def admin_feedback_rows(server: RunningOpenWebUI) -> list[dict[str, Any]]:
    """The rows Admin → Evaluations → Feedback loads (all pages; paged from 0.6.41)."""
    if server.release < (0, 6, 41):
        rows: list[dict[str, Any]] = raw(server, "GET", "/api/v1/evaluations/feedbacks/all")
        return rows
    rows, page = [], 1
    while True:
        data = raw(server, "GET", "/api/v1/evaluations/feedbacks/list", params={"page": page})
        rows += data["items"]
        if not data["items"] or len(rows) >= data["total"]:
            return rows
        page += 1


def sidebar_chat_ids(server: RunningOpenWebUI) -> set[str]:
    """Chats the sidebar lists outside folders."""
    return {c["id"] for c in raw(server, "GET", "/api/v1/chats/")}


@asynccontextmanager
async def folders_cleaned(runtime: Runtime) -> AsyncIterator[list[str]]:
    """Folder ids to remove afterwards; their chats are moved out first, since
    deleting a folder deletes its chats (and 0.6.x leaves their tags behind)."""
    created: list[str] = []
    try:
        yield created
    finally:
        organiser = Organiser(runtime.client)
        for folder_id in created:
            for chat_id in await organiser.chats_in_folder(folder_id):
                await organiser.file_chat(chat_id, None)
            await runtime.client.request("DELETE", f"/api/v1/folders/{folder_id}")


async def answered_chat(runtime: Runtime, question: str, thread: str) -> tuple[str, str, str]:
    """A real bridged chat with one turn: (chat id, question id, answer id)."""
    _, result = await ask(runtime, question, thread)
    assert result.status is TurnStatus.DONE
    assert result.chat_id is not None
    chain = treecheck.branch(history_of(await runtime.client.get_chat(result.chat_id)))
    assert [m["role"] for m in chain] == ["user", "assistant"]
    return result.chat_id, chain[0]["id"], chain[1]["id"]


async def test_channel_folder_holds_the_chat_and_is_found_by_id_after_a_rename(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    name = f"Slack · #support-{suffix()}"
    async with make_bridge(bridge_title_generation=False) as runtime:
        organiser = Organiser(runtime.client)
        chat_id, _, _ = await answered_chat(runtime, "Where is my invoice?", f"file-{suffix()}")
        before = fetch_chat(openwebui, chat_id)
        async with folders_cleaned(runtime) as created:
            folder = await organiser.create_folder(name)
            created.append(folder.id)
            assert chat_id in sidebar_chat_ids(openwebui)

            await organiser.file_chat(chat_id, folder.id)

            stored = fetch_chat(openwebui, chat_id)
            assert stored["folder_id"] == folder.id
            # Filing touches nothing else the admin sees in the chat.
            assert stored["title"] == before["title"]
            assert history_of(stored) == history_of(before)
            assert {(f["id"], f["name"]) for f in raw(openwebui, "GET", "/api/v1/folders/")} >= {
                (folder.id, name)
            }
            assert [
                c["id"] for c in raw(openwebui, "GET", f"/api/v1/chats/folder/{folder.id}")
            ] == [chat_id]
            # The sidebar shows it under the folder only.
            assert chat_id not in sidebar_chat_ids(openwebui)
            assert await organiser.chats_in_folder(folder.id) == [chat_id]
            assert folder in await organiser.folders()

            renamed = f"Slack · #help-desk-{suffix()}"
            await organiser.rename_folder(folder.id, renamed)
            found = await organiser.folder(folder.id)
            assert found is not None
            assert (found.id, found.name) == (folder.id, renamed)
            assert raw(openwebui, "GET", f"/api/v1/folders/{folder.id}")["name"] == renamed
            assert await organiser.chats_in_folder(folder.id) == [chat_id]
            # Renaming to the current name is harmless (0.6.x alone would refuse it).
            assert (await organiser.rename_folder(folder.id, renamed)).name == renamed


async def test_folder_names_are_unique_and_a_lost_mapping_finds_its_folder(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    tag = suffix()
    name = f"Discord · Acme › #help-{tag}"  # noqa: RUF001 (the brief's own separator)
    async with make_bridge(bridge_title_generation=False) as runtime:
        organiser = Organiser(runtime.client)
        async with folders_cleaned(runtime) as created:
            folder = await organiser.ensure_folder(name)
            created.append(folder.id)
            assert folder.name == name

            with pytest.raises(FolderNameTaken):
                await organiser.create_folder(name.upper())
            assert (await organiser.ensure_folder(name)).id == folder.id
            assert (await organiser.ensure_folder(name.upper())).id == folder.id

            # Before 0.11.1 names are compared with LIKE: "_" matches "-", so the
            # second channel gets a suffixed folder there; later ones compare exactly.
            exact_names = openwebui.release >= (0, 11, 1)
            dashed = await organiser.ensure_folder(f"Slack · #dev-ops-{tag}")
            created.append(dashed.id)
            underscored = await organiser.ensure_folder(f"Slack · #dev_ops-{tag}")
            created.append(underscored.id)
            assert underscored.id != dashed.id
            expected = f"Slack · #dev_ops-{tag}" + ("" if exact_names else " (2)")
            assert underscored.name == expected
            names = {f["name"] for f in raw(openwebui, "GET", "/api/v1/folders/")}
            assert {name, f"Slack · #dev-ops-{tag}", expected} <= names

            other = await organiser.create_folder(f"Slack · #other-{tag}")
            created.append(other.id)
            with pytest.raises(FolderNameTaken):
                await organiser.rename_folder(other.id, name)
            assert raw(openwebui, "GET", f"/api/v1/folders/{other.id}")["name"] == (
                f"Slack · #other-{tag}"
            )


async def test_gone_folders_are_reported_and_never_swallow_a_chat(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    async with make_bridge(bridge_title_generation=False) as runtime:
        organiser = Organiser(runtime.client)
        chat_id, _, _ = await answered_chat(runtime, "Gone folder question", f"gone-{suffix()}")
        folder = await organiser.create_folder(f"Slack · #archived-{suffix()}")
        await runtime.client.request("DELETE", f"/api/v1/folders/{folder.id}")

        assert await organiser.folder(folder.id) is None
        assert folder not in await organiser.folders()
        with pytest.raises(FolderGone):
            await organiser.file_chat(chat_id, folder.id)
        with pytest.raises(FolderGone):
            await organiser.rename_folder(folder.id, f"Slack · #new-{suffix()}")
        # 0.6.x would have taken the stale id and hidden the chat from the sidebar.
        assert fetch_chat(openwebui, chat_id)["folder_id"] is None
        assert chat_id in sidebar_chat_ids(openwebui)


async def test_tags_name_the_platform_channel_and_askers(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    tag = suffix()
    channel, asker, other = f"#support-{tag}", f"Alice Smith {tag}", f"Bob {tag}"
    async with make_bridge(bridge_title_generation=False) as runtime:
        organiser = Organiser(runtime.client)
        chat_id, _, _ = await answered_chat(runtime, "Tag me", f"tags-{tag}")

        # The bridge tagged its chat with its platform ("test") when filing it.
        assert {t.id for t in await organiser.chat_tags(chat_id)} == {"test"}
        # Blank names and "None" would be stored as useless tags or refused.
        tags = await organiser.tag_chat(chat_id, ["Slack", channel, asker, "", "  ", "None"])
        assert {t.id for t in tags} == {"test", "slack", channel, f"alice_smith_{tag}"}
        assert {t.name for t in tags} >= {channel, asker}
        # Again, in another case, plus a new asker: one tag each, no duplicates.
        tags = await organiser.tag_chat(chat_id, ["SLACK", asker.upper(), other])
        wanted = {"test", "slack", channel, f"alice_smith_{tag}", f"bob_{tag}"}
        assert sorted(t.id for t in tags) == sorted(wanted)

        held = raw(openwebui, "GET", f"/api/v1/chats/{chat_id}/tags")
        assert {t["id"] for t in held} == wanted
        assert sorted(fetch_chat(openwebui, chat_id)["meta"]["tags"]) == sorted(wanted)
        assert {t.id for t in await organiser.chat_tags(chat_id)} == wanted
        assert wanted <= {t.id for t in await organiser.all_tags()}
        assert {tag_id(n) for n in ("Test", "Slack", channel, asker, other)} == wanted
        # The sidebar's tag search finds the chat by a tag.
        by_tag = raw(openwebui, "POST", "/api/v1/chats/tags", json={"name": asker})
        assert [c["id"] for c in by_tag] == [chat_id]
        for name in (channel, asker, other):  # leave no one-off tags on the shared server
            raw(openwebui, "DELETE", f"/api/v1/chats/{chat_id}/tags", json={"name": name})
        assert {t.id for t in await organiser.chat_tags(chat_id)} == {"test", "slack"}


async def test_reactions_become_one_rating_per_person_per_answer(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    tag = suffix()
    alice = Rater("slack", f"UALICE{tag}", f"Alice {tag}")
    bob = Rater("slack", f"UBOB{tag}", f"Bob {tag}")
    async with make_bridge(bridge_title_generation=False) as runtime:
        organiser = Organiser(runtime.client)
        chat_id, question_id, answer_id = await answered_chat(runtime, "Rate me", f"rate-{tag}")

        def rows() -> list[dict[str, Any]]:
            return [
                r
                for r in admin_feedback_rows(openwebui)
                if r["meta"].get("message_id") == answer_id
            ]

        up = await organiser.set_rating(Rating(chat_id, answer_id, 1, alice))
        down = await organiser.set_rating(Rating(chat_id, answer_id, -1, bob))
        try:
            # The one Open WebUI account holds one record per platform person.
            assert up.id != down.id
            shown = {r["id"]: r for r in rows()}
            assert set(shown) == {up.id, down.id}
            for row, vote, rater in ((shown[up.id], 1, alice), (shown[down.id], -1, bob)):
                assert int(row["data"]["rating"]) == vote
                assert row["data"]["model_id"] == MODEL
                assert row["user"]["id"] == openwebui.user_id
                assert row["type"] == "rating"
                assert row["meta"]["chat_id"] == chat_id
                assert row["meta"]["platform_user"] == {
                    "platform": "slack",
                    "id": rater.user_id,
                    "name": rater.name,
                }
                assert rater.name in row["data"]["comment"]
                assert rater.name in row["data"]["reason"]
            # What the feedback dialog shows: the prompt and the answer (snapshot).
            record = raw(openwebui, "GET", f"/api/v1/evaluations/feedback/{up.id}")
            messages = record["snapshot"]["chat"]["chat"]["history"]["messages"]
            assert messages[answer_id]["parentId"] == question_id
            assert messages[question_id]["content"] == "Rate me"
            assert record["meta"]["message_index"] == 2

            # Alice changes her mind: the same record flips, nothing is added.
            changed = await organiser.set_rating(Rating(chat_id, answer_id, -1, alice), up.id)
            assert changed.id == up.id
            shown = {r["id"]: r for r in rows()}
            assert set(shown) == {up.id, down.id}
            assert int(shown[up.id]["data"]["rating"]) == -1
            assert "👎" in shown[up.id]["data"]["comment"]
            found = await organiser.find_rating(answer_id, alice)
            assert found is not None and (found.id, found.vote) == (up.id, -1)
            mine = {f.id: f for f in await organiser.feedbacks() if f.message_id == answer_id}
            assert {(f.rater, f.vote) for f in mine.values()} == {(alice, -1), (bob, -1)}

            # Bob removes his reaction: his record goes, Alice's stays.
            assert await organiser.clear_rating(down.id) is True
            assert [r["id"] for r in rows()] == [up.id]
            assert await organiser.feedback(down.id) is None
            assert await organiser.clear_rating(down.id) is False
            assert await organiser.find_rating(answer_id, bob) is None
            everyone = await organiser.feedbacks(everyone=True)
            assert [f.id for f in everyone if f.message_id == answer_id] == [up.id]

            # A record deleted in the web UI meanwhile is written anew.
            await runtime.client.request("DELETE", f"/api/v1/evaluations/feedback/{up.id}")
            again = await organiser.set_rating(Rating(chat_id, answer_id, 1, alice), up.id)
            assert again.id != up.id
            assert [(r["id"], int(r["data"]["rating"])) for r in rows()] == [(again.id, 1)]
        finally:
            for record in rows():
                await organiser.clear_rating(record["id"])
        assert rows() == []


async def test_chat_links_back_to_the_platform_thread(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    thread = f"link-{suffix()}"
    label = "Slack thread · #support"
    async with make_bridge(bridge_title_generation=False) as runtime:
        organiser = Organiser(runtime.client)
        chat_id, _, answer_id = await answered_chat(runtime, "Link me back", thread)
        before = fetch_chat(openwebui, chat_id)

        await organiser.link_thread(chat_id, answer_id, THREAD_URL, label)

        stored = fetch_chat(openwebui, chat_id)
        answer = history_of(stored)["messages"][answer_id]
        # The web UI draws the last status above the answer; its urls are links.
        status = answer["statusHistory"][-1]
        assert status["description"] == label
        assert status["urls"] == [THREAD_URL]
        assert status["items"] == [{"title": label, "link": THREAD_URL}]
        assert status["done"] is True
        assert treecheck.answer_text(answer) == expected_reply("Link me back")
        assert treecheck.problems(history_of(stored)) == []
        assert stored["title"] == before["title"]

        # The next turn (0.6.x rewrites the whole history) keeps the link.
        _, result = await ask(runtime, "And a follow-up", thread)
        assert result.status is TurnStatus.DONE
        history = history_of(fetch_chat(openwebui, result.chat_id or ""))
        assert treecheck.problems(history) == []
        assert history["messages"][answer_id]["statusHistory"][-1]["urls"] == [THREAD_URL]


async def wait_for_answer(runtime: Runtime, chat_id: str, message_id: str) -> None:
    """Until the answer's text is complete: ``done`` (0.12.x) or unchanged with no
    running task (0.6.x never marks it)."""
    deadline, last = time.monotonic() + 60, None
    while time.monotonic() < deadline:
        message = history_of(await runtime.client.get_chat(chat_id))["messages"].get(message_id)
        text = treecheck.answer_text(message or {})
        running = await runtime.client.running_tasks(chat_id)
        if text and (message or {}).get("done") is True:
            return
        if text and text == last and not running:
            return
        last = text
        await asyncio.sleep(0.5)
    raise AssertionError(f"answer {message_id} did not finish")


async def regenerate(
    openwebui: RunningOpenWebUI, runtime: Runtime, chat_id: str, question_id: str, answer_id: str
) -> None:
    """The regenerate the web UI does, as the findings recommend per version."""
    client = runtime.client
    chat = await client.get_chat(chat_id)
    history = history_of(chat)
    question = history["messages"][question_id]
    payload: dict[str, Any] = {
        "model": MODEL,
        "stream": True,
        "messages": [{"role": "user", "content": question["content"]}],
        "id": answer_id,
        "session_id": str(uuid.uuid4()),
        "chat_id": chat_id,
        "background_tasks": {},
    }
    if openwebui.release >= (0, 9):
        # The question re-sent with its own id: the server adds a sibling answer.
        payload["parent_id"] = question.get("parentId")
        payload["user_message"] = {
            key: question[key] for key in ("id", "role", "content", "models", "parentId")
        }
    else:
        placeholder = {
            "id": answer_id,
            "parentId": question_id,
            "childrenIds": [],
            "role": "assistant",
            "content": "",
            "model": MODEL,
            "modelName": MODEL,
            "done": False,
            "timestamp": int(time.time()),
        }
        history["messages"][question_id]["childrenIds"].append(answer_id)
        history["messages"][answer_id] = placeholder
        history["currentId"] = answer_id
        await client.update_chat(chat_id, {"history": history})
        if openwebui.release >= (0, 6, 41):
            payload["parent_id"] = question_id  # stored as the answer's parent
    await client.start_completion(payload)
    await wait_for_answer(runtime, chat_id, answer_id)
    await flows.mark_done(client, chat_id, answer_id)


async def test_regenerate_adds_a_sibling_answer(
    openwebui: RunningOpenWebUI,
    make_bridge: BridgeFactory,
    model_server: ThreadedModelServer | RemoteModelServer,
) -> None:
    question = f"Regenerate this {suffix()}"
    async with make_bridge(bridge_title_generation=False) as runtime:
        chat_id, question_id, first_id = await answered_chat(runtime, question, f"re-{suffix()}")
        first = fetch_chat(openwebui, chat_id)["chat"]["history"]["messages"][first_id]
        second_id = str(uuid.uuid4())

        await regenerate(openwebui, runtime, chat_id, question_id, second_id)

        history = history_of(fetch_chat(openwebui, chat_id))
        messages = history["messages"]
        # The web UI shows "2/2" under the question's answers, the new one current.
        assert messages[question_id]["childrenIds"] == [first_id, second_id]
        assert history["currentId"] == second_id
        assert messages[second_id]["parentId"] == question_id
        assert messages[second_id]["done"] is True
        assert treecheck.answer_text(messages[second_id]) == expected_reply(question)
        assert treecheck.answer_text(messages[first_id]) == treecheck.answer_text(first)
        assert treecheck.problems(history) == []
        assert [m["id"] for m in treecheck.branch(history)] == [question_id, second_id]
        assert len(messages) == 3
        # The model was asked the question again, without the answer it replaces.
        asked = [
            [(m["role"], m["content"]) for m in request if m["role"] != "system"]
            for request in model_server.chat_requests()
            if any(m.get("content") == question for m in request)
        ]
        assert asked == [[("user", question)]] * 2

        # A rating of the new answer names the first one's model as its sibling.
        organiser = Organiser(runtime.client)
        rated = await organiser.set_rating(
            Rating(chat_id, second_id, 1, Rater("discord", "42", "Dana"))
        )
        try:
            record = raw(openwebui, "GET", f"/api/v1/evaluations/feedback/{rated.id}")
            assert record["data"]["sibling_model_ids"] == [MODEL]
            assert record["meta"]["message_index"] == 2
        finally:
            assert await organiser.clear_rating(rated.id)
