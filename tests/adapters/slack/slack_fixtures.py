"""A local Slack for the adapter's unit tests, and replies pointed at it (used by conftest)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.client import retry_handlers
from adapters.slack.features import Recipient
from adapters.slack.reply import SlackOutput, SlackReply, Target
from tests.fakes.slack_server import BOT_USER_ID, TEAM_ID, FakeSlack

TOKEN = "xoxb-test"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server
        server.release_all()


def output(fake: FakeSlack, **overrides: Any) -> SlackOutput:
    """What the adapter builds, with the same two clients (retries or none)."""
    client = AsyncWebClient(token=TOKEN, base_url=fake.api_url, retry_handlers=retry_handlers())
    quick = AsyncWebClient(token=TOKEN, base_url=fake.api_url, retry_handlers=[])
    return SlackOutput(client=client, quick=quick, **overrides)


@dataclass
class Asked:
    """A question in a thread and the replies made to it."""

    fake: FakeSlack
    out: SlackOutput
    channel: str
    thread: str
    question: str = ""  # the question's ts (the thread's first message, unless given)
    saved: list[list[str]] = field(default_factory=list)

    def reply(
        self,
        ids: Sequence[str] = (),
        *,
        user: str = "U1",
        team: str = TEAM_ID,
        recipient: Recipient = Recipient.TEAM,
        may_be_streaming: bool = True,
        assistant: bool = False,
    ) -> SlackReply:
        async def save(message_ids: Sequence[str]) -> None:
            self.saved.append(list(message_ids))

        question = self.question or self.thread
        target = Target(
            TEAM_ID,
            self.channel,
            self.thread,
            user,
            team,
            recipient,
            turn=question,
            question_ts=question,
            bot_user=BOT_USER_ID,
            assistant=assistant,
        )
        return SlackReply(self.out, target, ids, save, may_be_streaming=may_be_streaming)

    @property
    def shown(self) -> list[str]:
        """The bot's messages in the thread, as a person sees them now."""
        return [m.text for m in self.fake.bot_replies(self.channel, self.thread)]


def ask(fake: FakeSlack, out: SlackOutput, channel: str = "C1", text: str = "q") -> Asked:
    thread, _, _ = fake.user_says(channel, "U1", f"<@UBOT> {text}")
    return Asked(fake, out, channel, thread)


def methods(fake: FakeSlack) -> list[str]:
    """Message-changing calls in order (status calls left out)."""
    return [c.method for c in fake.calls if c.method.startswith("chat.")]
