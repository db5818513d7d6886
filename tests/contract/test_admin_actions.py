"""What people do to answers, through the real core and real Open WebUI servers:
ratings become feedback records, a stop keeps what was shown, a regenerate adds a
sibling answer the thread continues under, and a channel's own model and system
prompt reach the chat."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from adapters.runtime import Runtime, open_runtime
from bridge.channels import ChannelRules, Channels
from bridge.events import ThreadKey
from bridge.openwebui.organise import Organiser, Rater
from bridge.store import TurnStatus
from tests import treecheck
from tests.contract.bridge_fixtures import (
    MODEL,
    RecordingReply,
    ask,
    event,
    fetch_chat,
    history_of,
    platform_of,
    rate,
    regenerate,
    settings_for,
    stop_answer,
    submit,
)
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI, free_port

pytestmark = [pytest.mark.timeout(120), pytest.mark.every_release]

STOPPED = "_(stopped)_"  # the line a stopped answer ends with
ALICE = Rater("test", "u-alice", "Alice")
BOB = Rater("test", "u-bob", "Bob")


_SERVERS: dict[int, RunningOpenWebUI] = {}


def fetch_chat_of(runtime: Runtime, chat_id: str) -> dict[str, Any]:
    return fetch_chat(_SERVERS[id(runtime)], chat_id)


@pytest.fixture
async def runtime(openwebui: RunningOpenWebUI, tmp_path: Path) -> AsyncIterator[Runtime]:
    channels = Channels(
        defaults=ChannelRules(model=MODEL),
        by_id={
            "c-support": ChannelRules(
                model="fake-model-2", system_prompt="You are the support desk of Example Ltd."
            )
        },
    )
    settings = settings_for(openwebui, tmp_path / "bridge.db")
    async with open_runtime(settings, channels=channels) as rt:
        platform_of(rt)
        _SERVERS[id(rt)] = openwebui
        yield rt
        _SERVERS.pop(id(rt), None)


def reply_id(question_id: str) -> str:
    return f"msg-{question_id}"  # RecordingReply's platform message id


async def my_feedbacks(runtime: Runtime, message_id: str) -> list[tuple[str, int]]:
    found = await Organiser(runtime.client).feedbacks()
    return sorted(
        (f.rater.user_id if f.rater else "?", f.vote) for f in found if f.message_id == message_id
    )


async def test_reactions_become_one_rating_per_person(runtime: Runtime) -> None:
    reply, result = await ask(runtime, "rate me", "t-rate")
    assert result.status is TurnStatus.DONE and result.chat_id
    answer_id = history_of(fetch_chat_of(runtime, result.chat_id))["currentId"]
    message = reply.message_id
    try:
        assert await rate(runtime, message, ALICE, 1)
        assert await rate(runtime, message, ALICE, -1)  # changes her mind
        assert await my_feedbacks(runtime, answer_id) == [("u-alice", -1)]
        # Taking back the 👍 she no longer holds changes nothing; the 👎 removes it.
        assert await rate(runtime, message, ALICE, 1, removed=True)
        assert await my_feedbacks(runtime, answer_id) == [("u-alice", -1)]
        assert await rate(runtime, message, ALICE, -1, removed=True)
        assert await my_feedbacks(runtime, answer_id) == []
        # Two people, two records.
        await rate(runtime, message, ALICE, 1)
        await rate(runtime, message, BOB, 1)
        assert await my_feedbacks(runtime, answer_id) == [("u-alice", 1), ("u-bob", 1)]
        # A message that holds no answer of the bridge is not rated.
        assert not await rate(runtime, "some-other-message", ALICE, 1)
    finally:
        for rater in (ALICE, BOB):
            await rate(runtime, message, rater, 1, removed=True)


async def test_a_stop_keeps_what_was_shown_and_the_thread_continues(runtime: Runtime) -> None:
    key = ThreadKey("test", "w", "c", "t-stop")
    reply = RecordingReply()
    pending = await submit(runtime, event("stop me [[words=400]] [[delay=0.05]]", "t-stop"), reply)
    deadline = time.monotonic() + 30
    while not reply.updates and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert await runtime.bridge.stop(key)
    result = await pending
    assert result.status is TurnStatus.STOPPED
    assert reply.final is not None and reply.final.endswith(STOPPED)
    assert result.chat_id and await runtime.client.running_tasks(result.chat_id) == []
    assert not await runtime.bridge.stop(key)  # nothing under way any more

    _, follow_up = await ask(runtime, "after the stop", "t-stop")
    assert follow_up.status is TurnStatus.DONE
    history = history_of(fetch_chat_of(runtime, result.chat_id))
    assert treecheck.problems(history) == []
    path = treecheck.branch(history)
    assert [m["role"] for m in path] == ["user", "assistant", "user", "assistant"]
    assert path[2]["parentId"] == path[1]["id"]  # the follow-up hangs under the stopped answer


async def test_stop_on_an_earlier_answer_leaves_the_one_being_written(runtime: Runtime) -> None:
    earlier, _ = await ask(runtime, "an earlier question", "t-stop-old")
    reply = RecordingReply()
    pending = await submit(
        runtime, event("a long one [[words=120]] [[delay=0.03]]", "t-stop-old"), reply
    )
    deadline = time.monotonic() + 30
    while not reply.updates and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    # ⏹ on the earlier answer: nothing stops; ⏹ on the answer being written stops it.
    assert not await stop_answer(runtime, earlier.message_id)
    assert await stop_answer(runtime, reply.message_id)
    result = await pending
    assert result.status is TurnStatus.STOPPED
    assert reply.final is not None and reply.final.endswith(STOPPED)
    assert not await stop_answer(runtime, reply.message_id)  # nothing left


async def test_stop_on_an_earlier_answer_never_cuts_off_the_current_one(
    runtime: Runtime,
) -> None:
    earlier, _ = await ask(runtime, "first", "t-stop-keep")
    question = "the current one [[words=60]] [[delay=0.03]]"
    reply = RecordingReply()
    pending = await submit(runtime, event(question, "t-stop-keep"), reply)
    while not reply.updates:
        await asyncio.sleep(0.05)
    assert not await stop_answer(runtime, earlier.message_id)
    result = await pending
    assert result.status is TurnStatus.DONE
    assert reply.final == expected_reply(question)


async def test_regenerate_adds_a_sibling_the_thread_continues_under(runtime: Runtime) -> None:
    first_reply, first = await ask(runtime, "first question", "t-regen")
    second_reply, second = await ask(runtime, "second question", "t-regen")
    assert first.chat_id and second.status is TurnStatus.DONE
    # Only the latest answer can be redone.
    refused = await regenerate(runtime, first_reply.message_id, "ev-r0")
    assert refused.notice and "latest" in refused.notice

    before = history_of(fetch_chat_of(runtime, first.chat_id))
    old_answer = before["currentId"]
    question_id = before["messages"][old_answer]["parentId"]
    pending = (await regenerate(runtime, second_reply.message_id, "ev-r1")).answer
    assert pending is not None
    assert (await regenerate(runtime, second_reply.message_id, "ev-r1")).answer is None
    again = await pending
    assert again.status is TurnStatus.DONE

    history = history_of(fetch_chat_of(runtime, first.chat_id))
    assert treecheck.problems(history) == []
    siblings = history["messages"][question_id]["childrenIds"]
    assert len(siblings) == 2 and siblings[0] == old_answer
    new_answer = siblings[1]
    assert history["currentId"] == new_answer
    assert expected_reply("second question") in history["messages"][new_answer]["content"]
    # The platform messages of the old answer were handed over to be edited.
    platform = platform_of(runtime)
    regen_ids = [ids for mid, ids in platform.given_ids.items() if mid.endswith("~ev-r1")]
    assert regen_ids == [(second_reply.message_id,)]

    _, third = await ask(runtime, "third question", "t-regen")
    history = history_of(fetch_chat_of(runtime, first.chat_id))
    third_question = history["messages"][history["currentId"]]["parentId"]
    assert history["messages"][third_question]["parentId"] == new_answer
    assert third.status is TurnStatus.DONE


async def test_a_channel_has_its_own_model_and_system_prompt(
    runtime: Runtime, model_server: Any
) -> None:
    support = replace(event("a support question", "t-support"), place="c-support")
    result = await (await submit(runtime, support, RecordingReply()))
    assert result.status is TurnStatus.DONE and result.chat_id
    chat = fetch_chat_of(runtime, result.chat_id)
    inner = chat["chat"]
    assert inner["params"]["system"] == "You are the support desk of Example Ltd."
    assert inner["history"]["messages"][inner["history"]["currentId"]]["model"] == "fake-model-2"
    recorded = await asyncio.to_thread(model_server.recorded)
    asked = [
        r["body"]["messages"]
        for r in recorded
        if r["kind"] == "chat" and "a support question" in str(r["body"]["messages"])
    ]
    assert asked and asked[-1][0] == {
        "role": "system",
        "content": "You are the support desk of Example Ltd.",
    }
    # Another channel: the defaults (no system prompt, the default model).
    _, other = await ask(runtime, "elsewhere", "t-other")
    other_chat = fetch_chat_of(runtime, other.chat_id or "")["chat"]
    assert not (other_chat.get("params") or {}).get("system")


async def test_regenerate_waits_until_nothing_else_of_the_thread_is_answered(
    runtime: Runtime,
) -> None:
    first_reply, first = await ask(runtime, "first question", "t-regen-race")
    assert first.status is TurnStatus.DONE
    # While the second question is answered, 🔁 on the first answer is refused: its new
    # answer would become what the third question chains under, leaving the second out.
    second = event("second question [[words=60]] [[delay=0.05]]", "t-regen-race")
    second_reply = RecordingReply()
    pending = await submit(runtime, second, second_reply)
    while not second_reply.updates:
        await asyncio.sleep(0.05)
    refused = await regenerate(runtime, first_reply.message_id, "ev-race")
    assert refused.notice and "still answering" in refused.notice
    assert (await pending).status is TurnStatus.DONE

    _, third = await ask(runtime, "third question", "t-regen-race")
    assert first.chat_id is not None
    history = history_of(fetch_chat_of(runtime, first.chat_id))
    assert treecheck.problems(history) == []
    questions = [m["content"] for m in treecheck.branch(history)[::2]]
    assert questions == ["first question", second.text, "third question"]
    assert third.status is TurnStatus.DONE


async def test_regenerate_on_a_failed_answer_asks_again(runtime: Runtime) -> None:
    # The first attempt fails before it reaches Open WebUI (the server is unreachable).
    url = runtime.client.base_url
    runtime.client.base_url = f"http://127.0.0.1:{free_port()}"
    failed_reply, failed = await ask(runtime, "are you there", "t-regen-failed")
    runtime.client.base_url = url
    assert failed.status is TurnStatus.FAILED and failed_reply.failure

    # 🔁 on the failure is the person's retry: the question is answered.
    pending = (await regenerate(runtime, failed_reply.message_id, "ev-retry")).answer
    assert pending is not None
    again = await pending
    assert again.status is TurnStatus.DONE
    [retry] = [r for mid, r in platform_of(runtime).replies.items() if mid.endswith("~ev-retry")]
    assert retry.final == expected_reply("are you there")
    assert again.chat_id is not None
    history = history_of(fetch_chat_of(runtime, again.chat_id))
    assert treecheck.problems(history) == []
    assert [m["content"] for m in treecheck.branch(history)] == [
        "are you there",
        expected_reply("are you there"),
    ]
