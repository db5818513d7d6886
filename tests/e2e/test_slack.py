"""The Slack adapter end to end: a real Bolt app (Socket Mode and HTTP mode) talking
to a local Slack-compatible server, the real core, real Open WebUI, real SQLite."""

from __future__ import annotations

import asyncio
import itertools
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from adapters.runtime import Runtime, open_runtime
from adapters.slack.app import SCOPES, SlackAdapter
from adapters.slack.settings import SlackSettings
from bridge.channels import load_channels
from tests import treecheck
from tests.contract.bridge_fixtures import fetch_chat, history_of, settings_for
from tests.fakes.slack_server import BOT_USER_ID, FakeSlack, Message
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI
from tests.limit_shapes import rejoined

SECRET = "test-signing-secret"
CHANNEL = "C100"
DM = "D200"
ALICE, BOB = "UALICE", "UBOB"


class Harness:
    def __init__(self, fake: FakeSlack, adapter: SlackAdapter, runtime: Runtime, mode: str):
        self.fake, self.adapter, self.runtime, self.mode = fake, adapter, runtime, mode

    async def deliver(self, body: dict[str, Any], retry: int | None = None) -> None:
        if self.mode == "socket":
            await self.fake.send_event(
                body, retry_attempt=retry or 0, retry_reason="timeout" if retry else None
            )
        elif retry is None:
            # As Slack delivers: redelivered if not acknowledged within 3 seconds.
            delivery = await self.fake.deliver_event(
                f"http://127.0.0.1:{self.adapter.http_port}/slack/events", body, SECRET
            )
            assert delivery.acknowledged
        else:  # a retry replayed by hand
            status, _ = await self.fake.post_event(
                f"http://127.0.0.1:{self.adapter.http_port}/slack/events",
                body,
                SECRET,
                retry_num=retry,
            )
            assert status == 200

    async def say(
        self, channel: str, user: str, text: str, thread_ts: str | None = None, *, both: bool = True
    ) -> str:
        ts, message, mention = self.fake.user_says(channel, user, text, thread_ts=thread_ts)
        await self.deliver(message)
        if mention is not None and both:
            await self.deliver(mention)
        return ts

    async def answers(
        self, channel: str, thread: str, count: int, timeout: float = 60
    ) -> list[Message]:
        def done() -> bool:
            replies = self.fake.bot_replies(channel, thread)
            finished = [m for m in replies if m.stream_state != "streaming"]
            return len(finished) >= count and self.runtime.bridge.idle

        await self.fake.wait_for(done, timeout=timeout, what=f"{count} answers")
        return self.fake.bot_replies(channel, thread)


@asynccontextmanager
async def slack_bridge(
    server: RunningOpenWebUI,
    tmp: Path,
    mode: str,
    *,
    bridge: dict[str, Any] | None = None,
    channels: list[dict[str, Any]] | None = None,
    **slack: Any,
) -> AsyncIterator[Harness]:
    """``bridge``: core settings beyond the tests' own; ``channels``: ``[[channels]]``."""
    async with FakeSlack() as fake:
        fake.scopes = list(SCOPES)
        fake.add_user(ALICE, "Alice")
        fake.add_user(BOB, "Bob")
        settings = settings_for(server, tmp / "slack.db", **(bridge or {}))
        rules = load_channels(settings, {"channels": channels or []})
        async with open_runtime(settings, channels=rules) as runtime:
            slack_settings = SlackSettings(
                bot_token="xoxb-test",
                api_url=fake.api_url,
                **({"app_token": "xapp-test"} if mode == "socket" else {"signing_secret": SECRET}),
                **({"update_interval": 0.2} | slack),
            )
            adapter = SlackAdapter(runtime.bridge, slack_settings)
            await adapter.start()
            try:
                if mode == "socket":
                    await fake.wait_for_socket()
                yield Harness(fake, adapter, runtime, mode)
            finally:
                await adapter.stop()
                await adapter.close()


MODES = ["socket", "http"]
Make = Callable[..., Any]


@pytest.fixture
def make(openwebui: RunningOpenWebUI, tmp_path: Path) -> Make:
    return lambda mode, **kw: slack_bridge(openwebui, tmp_path, mode, **kw)


def chat_for(openwebui: RunningOpenWebUI, harness: Harness) -> dict[str, Any]:
    db = sqlite3.connect(harness.runtime.settings.bridge_database)
    (chat_id,) = db.execute("select chat_id from conversations").fetchone()
    db.close()
    return fetch_chat(openwebui, chat_id)


@pytest.mark.parametrize("mode", MODES)
async def test_mention_then_follow_up_in_thread(
    openwebui: RunningOpenWebUI, make: Make, mode: str
) -> None:
    async with make(mode) as h:
        q1 = f"<@{BOT_USER_ID}> what is the plan? [[words=40]] [[delay=0.05]]"
        thread = await h.say(CHANNEL, ALICE, q1)
        first = await h.answers(CHANNEL, thread, 1)
        await h.say(CHANNEL, ALICE, "and then?", thread_ts=thread)
        replies = await h.answers(CHANNEL, thread, 2)

        assert [m.text for m in replies] == [
            expected_reply("Alice: what is the plan? [[words=40]] [[delay=0.05]]"),
            expected_reply("Alice: and then?"),
        ]
        assert first[0].streamed and len(first[0].versions) >= 2  # streamed in steps
        assert all(m.thread_ts == thread for m in replies)
        history = history_of(chat_for(openwebui, h))
        assert treecheck.problems(history) == []
        chain = treecheck.branch(history)
        assert [m["content"] for m in chain[::2]] == [
            "Alice: what is the plan? [[words=40]] [[delay=0.05]]",
            "Alice: and then?",
        ]


@pytest.mark.parametrize("over", [0, 1], ids=["at the limit", "one over"])
async def test_an_answer_of_12000_characters_is_one_message_and_of_12001_two(
    make: Make, over: int
) -> None:
    async with make("socket") as h:
        q = f"<@{BOT_USER_ID}> edge [[chars={12_000 + over}]] [[delay=0]]"
        answer = expected_reply(q.replace(f"<@{BOT_USER_ID}> ", "Alice: "))
        assert len(answer) == 12_000 + over  # Slack's markdown_text limit, and one more
        assert not answer[-1].isspace()  # trailing whitespace would not count
        ts = await h.say(CHANNEL, ALICE, q)
        replies = await h.answers(CHANNEL, ts, 1 + over)
        await asyncio.sleep(0.5)
        replies = h.fake.bot_replies(CHANNEL, ts)
        assert len(replies) == 1 + over
        assert all(len(m.text) <= 12_000 for m in replies), [len(m.text) for m in replies]
        assert "".join(m.text for m in replies) == answer
        longest = max(len(str(c.params.get("markdown_text") or "")) for c in h.fake.calls)
        assert longest <= 12_000  # none refused on the way


@pytest.mark.parametrize("mode", MODES)
async def test_dm_conversation(make: Make, mode: str) -> None:
    async with make(mode) as h:
        thread = await h.say(DM, ALICE, "hello in private")
        await h.answers(DM, thread, 1)
        await h.say(DM, ALICE, "second private", thread_ts=thread)
        replies = await h.answers(DM, thread, 2)
        assert [m.text for m in replies] == [
            expected_reply("Alice: hello in private"),
            expected_reply("Alice: second private"),
        ]


@pytest.mark.parametrize("mode", MODES)
async def test_mention_in_someone_elses_thread_brings_context(
    openwebui: RunningOpenWebUI, make: Make, mode: str
) -> None:
    async with make(mode) as h:
        root, _, _ = h.fake.user_says(CHANNEL, BOB, "Deploy failed on node 7")
        h.fake.user_says(CHANNEL, ALICE, "It was the disk, I think", thread_ts=root)
        await h.say(CHANNEL, ALICE, f"<@{BOT_USER_ID}> summarise please", thread_ts=root)
        await h.answers(CHANNEL, root, 1)
        history = history_of(chat_for(openwebui, h))
        question = treecheck.branch(history)[0]["content"]
        assert "Bob: Deploy failed on node 7" in question
        assert "Alice: It was the disk, I think" in question
        assert question.endswith("Alice: summarise please")


@pytest.mark.parametrize("mode", MODES)
async def test_duplicates_and_retries_get_one_answer(make: Make, mode: str) -> None:
    async with make(mode) as h:
        ts, message, mention = h.fake.user_says(CHANNEL, ALICE, f"<@{BOT_USER_ID}> once only")
        assert mention is not None
        await h.deliver(message)
        await h.deliver(mention)
        await h.deliver(mention, retry=1)
        await h.deliver(message, retry=2)
        replies = await h.answers(CHANNEL, ts, 1)
        await asyncio.sleep(0.5)
        assert len(h.fake.bot_replies(CHANNEL, ts)) == len(replies) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_streaming_refused_falls_back_to_paced_updates_and_survives_429(
    make: Make, mode: str
) -> None:
    async with make(mode) as h:
        h.fake.streaming_enabled = False
        h.fake.rate_limit_next("chat.update", retry_after=1)
        q = f"<@{BOT_USER_ID}> long one [[words=120]] [[delay=0.03]]"
        ts = await h.say(CHANNEL, ALICE, q)
        replies = await h.answers(CHANNEL, ts, 1)
        assert [m.text for m in replies] == [
            expected_reply(q.replace(f"<@{BOT_USER_ID}> ", "Alice: "))
        ]
        assert not replies[0].streamed
        assert replies[0].updates >= 1
        # Intermediate edits are paced by SLACK_UPDATE_INTERVAL; the final one lands at once.
        sent = [c for c in h.fake.calls_of("chat.update") if c not in h.fake.rate_limited]
        gaps = [b.at - a.at for a, b in itertools.pairwise(sent[:-1])]
        assert all(g >= 0.15 for g in gaps), gaps
        assert h.fake.rate_limited  # the 429 happened and was waited out


@pytest.mark.parametrize("mode", MODES)
async def test_long_answer_is_split_at_boundaries(
    openwebui: RunningOpenWebUI, make: Make, mode: str
) -> None:
    async with make(mode) as h:
        q = f"<@{BOT_USER_ID}> huge [[chars=20000]] [[code]] [[delay=0]]"
        ts = await h.say(CHANNEL, ALICE, q)
        await h.answers(CHANNEL, ts, 2)
        replies = h.fake.bot_replies(CHANNEL, ts)
        assert len(replies) >= 2
        assert all(len(m.text) <= 12_000 for m in replies)
        history = history_of(chat_for(openwebui, h))
        stored = treecheck.answer_text(history["messages"][history["currentId"]])
        assert rejoined([m.text for m in replies]) == stored
        for m in replies:
            assert m.text.count("```") % 2 == 0  # fences balanced in every message


@pytest.mark.parametrize("mode", MODES)
async def test_other_bots_are_ignored(make: Make, mode: str) -> None:
    async with make(mode) as h:
        ts = await h.say(CHANNEL, ALICE, f"<@{BOT_USER_ID}> hi")
        await h.answers(CHANNEL, ts, 1)
        bot_message = h.fake.message_event(
            CHANNEL,
            "UOTHER",
            f"<@{BOT_USER_ID}> loop?",
            thread_ts=ts,
            bot_id="BOTHER",
            subtype="bot_message",
        )
        await h.deliver(bot_message)
        # A person's next message is answered; the bot's, delivered before it, never is.
        await h.say(CHANNEL, ALICE, "still there?", thread_ts=ts)
        replies = await h.answers(CHANNEL, ts, 2)
        await asyncio.sleep(0.5)
        assert [m.text for m in h.fake.bot_replies(CHANNEL, ts)] == [
            expected_reply("Alice: hi"),
            expected_reply("Alice: still there?"),
        ]
        assert len(replies) == 2


# HTTP mode only: Socket Mode has no signatures (the app dialled out with its token).
async def test_bad_signature_and_stale_timestamp_are_refused(make: Make) -> None:
    async with make("http") as h:
        url = f"http://127.0.0.1:{h.adapter.http_port}/slack/events"
        _, body, _ = h.fake.user_says(CHANNEL, ALICE, f"<@{BOT_USER_ID}> forged")
        status, _ = await h.fake.post_event(url, body, SECRET, bad_signature=True)
        assert status == 401
        status, _ = await h.fake.post_event(url, body, SECRET, timestamp=int(time.time()) - 400)
        assert status == 401
        # The same event properly signed gets its one answer: the refusals did nothing.
        ts = body["event"]["ts"]
        status, _ = await h.fake.post_event(url, body, SECRET)
        assert status == 200
        replies = await h.answers(CHANNEL, ts, 1)
        await asyncio.sleep(0.5)
        assert [m.text for m in h.fake.bot_replies(CHANNEL, ts)] == [
            expected_reply("Alice: forged")
        ]
        assert len(replies) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_failure_ends_in_one_short_message(make: Make, mode: str) -> None:
    async with make(mode) as h:
        ts = await h.say(CHANNEL, ALICE, f"<@{BOT_USER_ID}> break please [[fail=500]]")
        await h.answers(CHANNEL, ts, 1)
        await asyncio.sleep(0.5)
        replies = h.fake.bot_replies(CHANNEL, ts)
        assert [m.text for m in replies] == [
            ":warning: The model could not answer this message. Please try again."
        ]
        assert h.fake.count("chat.startStream") == 0  # no half-streamed answer left behind


async def test_workspace_without_markdown_text_gets_mrkdwn(make: Make) -> None:
    async with make("socket") as h:
        h.fake.streaming_enabled = False
        h.fake.markdown_text_enabled = False
        q = f"<@{BOT_USER_ID}> **bold** please [[code]]"
        ts = await h.say(CHANNEL, ALICE, q)
        replies = await h.answers(CHANNEL, ts, 1)
        expected = expected_reply(q.replace(f"<@{BOT_USER_ID}> ", "Alice: "))
        # mrkdwn bolds with one star and its fences carry no language; nothing to escape.
        mrkdwn = expected.replace("**bold**", "*bold*").replace("```python\n", "```\n")
        assert mrkdwn.startswith('Answer to "Alice: *bold* please":\n\n```\nprint(')
        assert [m.text for m in replies] == [mrkdwn]
        assert "```python" not in replies[0].text  # mrkdwn fences carry no language


async def test_reasoning_shows_as_one_line_not_raw_html(make: Make) -> None:
    async with make("socket") as h:
        q = f"<@{BOT_USER_ID}> think first [[think=1]] [[words=20]]"
        ts = await h.say(CHANNEL, ALICE, q)
        [reply] = await h.answers(CHANNEL, ts, 1)
        answer = expected_reply(q.replace(f"<@{BOT_USER_ID}> ", "Alice: "))
        assert not any("<details" in version for version in reply.versions)
        # 0.6.x folds the reasoning into the answer's text (shown as one line of its
        # own); 0.12.x keeps it apart from the text.
        assert reply.text == answer or re.fullmatch(
            r"_Thought for (less than a second|\d+ seconds?)_\n\n" + re.escape(answer), reply.text
        ), reply.text


@pytest.mark.parametrize("mode", MODES)
async def test_question_is_stored_before_slack_gets_the_ack(make: Make, mode: str) -> None:
    async with make(mode) as h:
        h.fake.delay("users.info", 2.0)  # the turn's own look-ups may take their time…
        ts = await h.say(CHANNEL, ALICE, f"<@{BOT_USER_ID}> keep this safe")
        # …but once Slack has its acknowledgement, the question is on disk.
        db = sqlite3.connect(h.runtime.settings.bridge_database)
        try:
            rows = db.execute("select platform_message_id from turns").fetchall()
        finally:
            db.close()
        assert rows == [(ts,)]
        await h.answers(CHANNEL, ts, 1)


# -- Slack's answer lost after it made the message ------------------------------------------


@pytest.mark.parametrize("method", ["chat.startStream", "chat.postMessage"])
async def test_an_answer_whose_first_post_lost_slacks_reply_is_shown_once(
    make: Make, method: str
) -> None:
    streaming = method == "chat.startStream"
    async with make("socket", native_streaming=streaming) as h:
        h.fake.lose_response(method)  # made, then the connection drops
        q = f"<@{BOT_USER_ID}> once please [[words=40]] [[delay=0.05]]"
        ts = await h.say(CHANNEL, ALICE, q)
        replies = await h.answers(CHANNEL, ts, 1)
        await asyncio.sleep(0.5)  # a second copy, if any, shows by now
        assert len(h.fake.lost) == 1
        assert [m.text for m in h.fake.bot_replies(CHANNEL, ts)] == [
            expected_reply(q.replace(f"<@{BOT_USER_ID}> ", "Alice: "))
        ]
        assert len(replies) == 1 and replies[0].streamed == streaming


async def test_a_restart_while_a_post_is_uncertain_ends_with_one_copy(
    openwebui: RunningOpenWebUI, tmp_path: Path
) -> None:
    q = f"<@{BOT_USER_ID}> survive this [[words=60]] [[delay=0.05]]"
    async with FakeSlack() as fake:
        fake.scopes = list(SCOPES)
        fake.add_user(ALICE, "Alice")
        settings = SlackSettings(
            bot_token="xoxb-test",
            app_token="xapp-test",
            api_url=fake.api_url,
            update_interval=0.2,
            native_streaming=False,
        )
        database = tmp_path / "restart.db"
        fake.lose_response("chat.postMessage")
        fake.hold("conversations.replies")  # the look-up for it never finishes…
        async with open_runtime(settings_for(openwebui, database)) as runtime:
            adapter = SlackAdapter(runtime.bridge, settings)
            await adapter.start()
            try:
                await fake.wait_for_socket()
                ts, message, _ = fake.user_says(CHANNEL, ALICE, q)
                await fake.send_event(message)
                await fake.wait_for(lambda: fake.held, timeout=60, what="the look-up")
            finally:
                await adapter.stop()  # …because the process dies meanwhile
                await runtime.bridge.drain(0)
                await adapter.close()
        fake.release_all()
        assert len(fake.lost) == 1 and len(fake.bot_replies(CHANNEL, ts)) == 1

        async with open_runtime(settings_for(openwebui, database)) as runtime:
            adapter = SlackAdapter(runtime.bridge, settings)
            await adapter.start()
            try:
                assert await runtime.bridge.resume("slack") == 1
                await fake.wait_for(
                    lambda: fake.count("chat.update") and runtime.bridge.idle,
                    timeout=60,
                    what="the answer",
                )
            finally:
                await adapter.stop()
                await adapter.close()
        assert [m.text for m in fake.bot_replies(CHANNEL, ts)] == [
            expected_reply(q.replace(f"<@{BOT_USER_ID}> ", "Alice: "))
        ]
