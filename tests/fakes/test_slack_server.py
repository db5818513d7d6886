"""FakeSlack driven by the real slack_sdk client and a real Bolt AsyncApp (both modes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_server import BOT_ID, BOT_USER_ID, TEAM_ID, FakeSlack

BOT_TOKEN = "xoxb-test"
APP_TOKEN = "xapp-test"
SECRET = "signing-secret"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    # No retry handlers beyond the default (connection errors only), like a bare client.
    return AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url)


def _error(exc: pytest.ExceptionInfo[SlackApiError]) -> str:
    return str(exc.value.response["error"])


# -- (a) Web API ------------------------------------------------------------------


async def test_auth_test_identity_and_scopes(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.scopes = ["chat:write", "app_mentions:read"]
    response = await client.auth_test()
    assert (response["user_id"], response["bot_id"], response["team_id"]) == (
        BOT_USER_ID,
        BOT_ID,
        TEAM_ID,
    )
    assert response.headers["x-oauth-scopes"] == "chat:write,app_mentions:read"
    assert fake.calls[0].method == "auth.test"
    assert fake.calls[0].params["token"] == BOT_TOKEN


async def test_post_update_and_thread_view(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_user("U1", "Ada")
    parent, _, _ = fake.user_says("C1", "U1", "hello")
    posted = await client.chat_postMessage(channel="C1", thread_ts=parent, text="thinking")
    assert posted["message"]["bot_id"] == BOT_ID
    await client.chat_update(channel="C1", ts=posted["ts"], markdown_text="**done**")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "second"}}]
    second = await client.chat_postMessage(
        channel="C1", thread_ts=parent, text="fallback", blocks=blocks
    )

    view = fake.thread_view("C1", parent)
    assert [(m.user, m.text, m.bot) for m in view] == [
        ("U1", "hello", False),
        (BOT_USER_ID, "**done**", True),
        (BOT_USER_ID, "second", True),
    ]
    assert [m.ts for m in fake.bot_replies("C1", parent)] == [posted["ts"], second["ts"]]
    first = fake.bot_replies("C1", parent)[0]
    assert first.versions == ["thinking", "**done**"] and first.updates == 1
    assert float(parent) < float(posted["ts"]) < float(second["ts"])

    replies = await client.conversations_replies(channel="C1", ts=parent)
    shapes = replies["messages"]
    assert [m["ts"] for m in shapes] == [parent, posted["ts"], second["ts"]]
    assert shapes[0]["reply_count"] == 2 and shapes[0]["thread_ts"] == parent
    assert "bot_id" not in shapes[0] and shapes[1]["bot_id"] == BOT_ID
    assert shapes[1]["thread_ts"] == parent and shapes[1]["parent_user_id"] == "U1"

    user = (await client.users_info(user="U1"))["user"]
    assert user["profile"]["display_name"] == "Ada"
    with pytest.raises(SlackApiError) as missing:
        await client.users_info(user="U404")
    assert _error(missing) == "user_not_found"


async def test_form_encoded_calls_and_unknown_methods(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    response = await client.api_call(
        "chat.postMessage",
        data={"channel": "C1", "text": "plain", "blocks": '[{"type":"markdown","text":"md"}]'},
    )
    assert fake.message("C1", response["ts"]) is not None
    assert fake.channel_view("C1")[0].text == "md"
    assert (await client.reactions_add(channel="C1", timestamp=response["ts"], name="eyes"))["ok"]
    assert fake.count("reactions.add") == 1


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_errors_slack_gives(fake: FakeSlack, client: AsyncWebClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"text": "x" * 40_001}, "msg_too_long"),
        ({"markdown_text": "x" * 12_001}, "msg_too_long"),
        ({"blocks": [{"type": "markdown", "text": "x" * 12_001}]}, "invalid_blocks"),
        ({}, "no_text"),
    ]
    for kwargs, error in cases:
        with pytest.raises(SlackApiError) as exc:
            await client.chat_postMessage(channel="C1", **kwargs)
        assert _error(exc) == error
    assert fake.channel_view("C1") == []

    ts, _, _ = fake.user_says("C1", "U1", "mine")
    with pytest.raises(SlackApiError) as exc:
        await client.chat_update(channel="C1", ts=ts, text="yours now")
    assert _error(exc) == "cant_update_message"
    with pytest.raises(SlackApiError) as exc:
        await AsyncWebClient(base_url=fake.api_url).auth_test()
    assert _error(exc) == "not_authed"

    fake.fail_next("chat.update", "msg_too_long")
    posted = await client.chat_postMessage(channel="C1", text="a")
    with pytest.raises(SlackApiError) as exc:
        await client.chat_update(channel="C1", ts=posted["ts"], text="b")
    assert _error(exc) == "msg_too_long"
    await client.chat_update(channel="C1", ts=posted["ts"], text="b")
    assert fake.channel_view("C1")[-1].text == "b"


async def test_native_stream(fake: FakeSlack, client: AsyncWebClient) -> None:
    parent, _, _ = fake.user_says("C1", "U1", "<@UBOT> tell me")
    with pytest.raises(SlackApiError) as exc:
        await client.chat_startStream(channel="C1", thread_ts=parent, markdown_text="a")
    assert _error(exc) == "missing_recipient_team_id"
    with pytest.raises(SlackApiError) as exc:
        await client.chat_startStream(
            channel="C1", thread_ts=parent, markdown_text="a", recipient_team_id=TEAM_ID
        )
    assert _error(exc) == "missing_recipient_user_id"

    started = await client.chat_startStream(
        channel="C1",
        thread_ts=parent,
        markdown_text="Hel",
        recipient_team_id=TEAM_ID,
        recipient_user_id="U1",
    )
    ts = started["ts"]
    assert fake.bot_replies("C1", parent)[0].stream_state == "streaming"
    await client.chat_appendStream(channel="C1", ts=ts, markdown_text="lo ")
    with pytest.raises(SlackApiError) as exc:
        await client.chat_update(channel="C1", ts=ts, text="no")
    assert _error(exc) == "streaming_state_conflict"
    await client.chat_stopStream(channel="C1", ts=ts, markdown_text="world")
    (reply,) = fake.bot_replies("C1", parent)
    assert (reply.text, reply.stream_state, reply.updates) == ("Hello world", "stopped", 2)
    assert reply.versions == ["Hel", "Hello ", "Hello world"]
    with pytest.raises(SlackApiError) as exc:
        await client.chat_appendStream(channel="C1", ts=ts, markdown_text="late")
    assert _error(exc) == "message_not_in_streaming_state"
    # Once stopped it is an ordinary message that can be edited.
    await client.chat_update(channel="C1", ts=ts, markdown_text="Edited")
    assert fake.bot_replies("C1", parent)[0].text == "Edited"


async def test_sdk_stream_helper_in_dm(fake: FakeSlack, client: AsyncWebClient) -> None:
    # chat_stream() sends markdown_text chunks; DMs need no recipient ids.
    parent, _, mention = fake.user_says("D1", "U1", "<@UBOT> hi")
    assert mention is None  # Slack delivers no app_mention in DMs
    stream = await client.chat_stream(channel="D1", thread_ts=parent, buffer_size=4)
    await stream.append(markdown_text="ab")
    assert fake.count("chat.startStream") == 0  # still buffered
    await stream.append(markdown_text="cdef")
    await stream.append(markdown_text="g")
    await stream.stop(markdown_text="h")
    assert [c.method for c in fake.calls] == ["chat.startStream", "chat.stopStream"]
    (reply,) = fake.bot_replies("D1", parent)
    assert reply.text == "abcdefgh" and reply.stream_state == "stopped"


async def test_streaming_switched_off(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.streaming_enabled = False
    with pytest.raises(SlackApiError) as exc:
        await client.chat_startStream(channel="D1", thread_ts="1.0", markdown_text="x")
    assert _error(exc) == fake.streaming_disabled_error == "feature_not_enabled"


async def test_set_status(fake: FakeSlack, client: AsyncWebClient) -> None:
    await client.assistant_threads_setStatus(channel_id="C1", thread_ts="1.1", status="thinking")
    assert fake.status_of("C1", "1.1") == "thinking"
    await client.assistant_threads_setStatus(channel_id="C1", thread_ts="1.1", status="")
    assert fake.status_of("C1", "1.1") == ""


# -- (b) rate limits ----------------------------------------------------------------


async def test_429_raises_without_retry_handler(fake: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="C1", text="a")
    fake.rate_limit_next("chat.update", retry_after=1)
    with pytest.raises(SlackApiError) as exc:
        await client.chat_update(channel="C1", ts=posted["ts"], text="b")
    assert exc.value.response.status_code == 429
    assert exc.value.response.headers["Retry-After"] == "1"
    assert _error(exc) == "ratelimited"
    assert fake.channel_view("C1")[0].text == "a"


async def test_429_retry_after_honoured_by_retry_handler(fake: FakeSlack) -> None:
    client = AsyncWebClient(
        token=BOT_TOKEN,
        base_url=fake.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    posted = await client.chat_postMessage(channel="C1", text="a")
    fake.rate_limit_next("chat.update", retry_after=1)
    started = time.monotonic()
    await client.chat_update(channel="C1", ts=posted["ts"], text="b")
    assert time.monotonic() - started >= 1.0
    first, second = fake.calls_of("chat.update")
    assert second.at - first.at >= 1.0
    assert fake.rate_limited == [first]
    assert fake.channel_view("C1")[0].text == "b"


# -- (c) Socket Mode ----------------------------------------------------------------


def _bolt_app(fake: FakeSlack, seen: list[dict[str, Any]], **kwargs: Any) -> AsyncApp:
    app = AsyncApp(client=AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url), **kwargs)

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], say: Any, request: Any) -> None:
        seen.append({"event": event, "headers": request.headers})
        await say(text=f"you said: {event['text']}", thread_ts=event.get("thread_ts", event["ts"]))

    @app.event("message")
    async def on_message() -> None:
        pass

    return app


async def test_socket_mode_round_trip_and_reconnect(fake: FakeSlack) -> None:
    seen: list[dict[str, Any]] = []
    handler = AsyncSocketModeHandler(_bolt_app(fake, seen), APP_TOKEN)
    await handler.connect_async()  # type: ignore[no-untyped-call]  # untyped in Bolt
    try:
        await fake.wait_for_socket()
        opened = fake.calls_of("apps.connections.open")
        assert [c.params["token"] for c in opened] == [APP_TOKEN]

        ts, message, mention = fake.user_says("C1", "U1", "<@UBOT> ping")
        assert mention is not None and mention["event_id"] != message["event_id"]
        await fake.send_event(message)
        envelope_id = await fake.send_event(mention)
        assert fake.envelope(envelope_id).acked_at is not None
        await fake.wait_for(lambda: fake.bot_replies("C1", ts), what="the bot's reply")
        assert fake.bot_replies("C1", ts)[0].text == "you said: <@UBOT> ping"
        assert fake.count("auth.test") >= 1  # Bolt learned its identity from the fake

        # Slack asks the client to move; the SDK opens a fresh URL and keeps working.
        await fake.request_reconnect()
        await fake.wait_for_socket(2)
        assert fake.count("apps.connections.open") == 2
        _, _, mention2 = fake.user_says("C1", "U1", "<@UBOT> again", thread_ts=ts)
        assert mention2 is not None
        await fake.send_event(mention2, retry_attempt=1, retry_reason="timeout")
        await fake.wait_for(lambda: len(fake.bot_replies("C1", ts)) == 2, what="second reply")
        assert seen[-1]["headers"]["x-slack-retry-num"] == ["1"]
        assert seen[-1]["headers"]["x-slack-retry-reason"] == ["timeout"]
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]  # untyped in Bolt


# -- (d) HTTP mode ----------------------------------------------------------------


@pytest.fixture
async def http_app(fake: FakeSlack) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    app = _bolt_app(fake, seen, signing_secret=SECRET)
    # Bolt's own aiohttp app (what app.start() would serve), on a free port in this loop.
    runner = web.AppRunner(app.web_app(path="/slack/events"))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/slack/events", seen
    await runner.cleanup()


async def test_http_mode_signed_event(
    fake: FakeSlack, http_app: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = http_app
    ts, _, mention = fake.user_says("C1", "U1", "<@UBOT> over http")
    assert mention is not None
    status, _ = await fake.post_event(url, mention, SECRET)
    assert status == 200
    await fake.wait_for(lambda: fake.bot_replies("C1", ts), what="the bot's reply")
    assert seen[0]["event"]["text"] == "<@UBOT> over http"

    status, _ = await fake.post_event(url, mention, SECRET, retry_num=1)
    assert status == 200
    await fake.wait_for(lambda: len(seen) == 2, what="the retried delivery")
    assert seen[1]["headers"]["x-slack-retry-num"] == ["1"]


async def test_http_mode_rejects_bad_and_stale_signatures(
    fake: FakeSlack, http_app: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = http_app
    _, _, mention = fake.user_says("C1", "U1", "<@UBOT> forged")
    assert mention is not None
    status, _ = await fake.post_event(url, mention, SECRET, bad_signature=True)
    assert status == 401
    stale = int(time.time()) - 6 * 60
    status, _ = await fake.post_event(url, mention, SECRET, timestamp=stale)
    assert status == 401
    # Bolt answers 401 before any listener is scheduled; give a stray one time to show up.
    await asyncio.sleep(0.2)
    assert seen == [] and fake.count("chat.postMessage") == 0
