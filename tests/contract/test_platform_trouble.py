"""The platform misbehaves while Open WebUI answers: a slow platform, one that
refuses the final text, a person who stops the answer. The answer is never cut
short by the platform's slowness, the chat keeps one root, and the next
question continues it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from bridge.errors import PlatformFailed, ReplyStopped
from bridge.store import TurnStatus
from tests import treecheck
from tests.contract.bridge_fixtures import (
    BridgeFactory,
    RecordingReply,
    ask,
    event,
    fetch_chat,
    history_of,
    submit,
)
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI

pytestmark = pytest.mark.every_release


@dataclass
class SlowReply(RecordingReply):
    """Every platform call takes ``delay`` seconds (a 429 being waited out)."""

    delay: float = 0.0

    async def update(self, text: str) -> bool:
        await asyncio.sleep(self.delay)
        return await super().update(text)


@dataclass
class RefusingReply(RecordingReply):
    async def finish(self, text: str) -> None:
        raise PlatformFailed("msg_too_long")


@dataclass
class StoppingReply(RecordingReply):
    """The person presses stop once the answer shows some text: the next update is refused."""

    async def update(self, text: str) -> bool:
        if self.updates:
            raise ReplyStopped("stopped_by_user")
        return await super().update(text)

    async def finish(self, text: str) -> None:
        self.final = text  # a stopped reply's finish only tidies up


async def test_a_slow_platform_does_not_time_the_answer_out(
    make_bridge: BridgeFactory,
) -> None:
    question = "patience [[words=30]] [[delay=0.05]]"
    async with make_bridge(bridge_answer_timeout=2) as runtime:
        reply = SlowReply(delay=3.0)
        result = await (await submit(runtime, event(question, "slow"), reply))
    assert result.status == TurnStatus.DONE, result.error
    assert reply.final == expected_reply(question) and reply.failure is None


async def test_after_the_platform_refused_an_answer_the_chat_keeps_one_root(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    async with make_bridge() as runtime:
        refused = RefusingReply()
        first = await (await submit(runtime, event("refused", "root"), refused))
        assert first.status == TurnStatus.FAILED
        assert refused.failure == PlatformFailed.user_message
        _, second = await ask(runtime, "again", "root")
    assert second.chat_id is not None
    history = history_of(fetch_chat(openwebui, second.chat_id))
    assert treecheck.problems(history) == []
    assert [m["content"] for m in treecheck.branch(history)] == [
        "refused",
        expected_reply("refused"),
        "again",
        expected_reply("again"),
    ]


async def test_a_stopped_answer_keeps_what_was_shown_and_the_chat_continues(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    question = "long story [[words=400]] [[delay=0.05]]"
    async with make_bridge() as runtime:
        reply = StoppingReply()
        result = await (await submit(runtime, event(question, "stop"), reply))
        assert result.status == TurnStatus.STOPPED
        # What was shown, marked stopped.
        shown = reply.updates[0]
        assert reply.failure is None and reply.final == shown.rstrip() + "\n\n_(stopped)_"
        _, after = await ask(runtime, "and now?", "stop")
    assert after.chat_id is not None
    history = history_of(fetch_chat(openwebui, after.chat_id))
    assert treecheck.problems(history) == []
    chain = treecheck.branch(history)
    assert [m["content"] for m in chain[::2]] == [question, "and now?"]
    # The stopped answer holds less than the whole story.
    assert len(chain[1]["content"]) < len(expected_reply(question))
    assert chain[3]["content"] == expected_reply("and now?")
