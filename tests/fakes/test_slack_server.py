"""FakeSlack driven by the real slack_sdk client and a real Bolt AsyncApp (both modes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_rules import RULES
from tests.fakes.slack_server import BOT_ID, BOT_USER_ID, TEAM_ID, WORKSPACE_URL, FakeSlack

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
    # A method Slack does not have (here a typo) is refused with HTTP 200, as Slack does.
    with pytest.raises(SlackApiError) as exc:
        await client.api_call("chat.postMesage", json={"channel": "C1", "text": "x"})
    assert exc.value.response.status_code == 200 and _error(exc) == "unknown_method"
    assert fake.count("chat.postMesage") == 1 and len(fake.channel_view("C1")) == 1


async def test_scopes_come_from_slacks_method_table(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.add_channel("G1", "ops", kind="group")
    fake.scopes = ["chat:write", "channels:history"]
    parent, _, _ = fake.user_says("C1", "U1", "hello")
    assert (await client.conversations_replies(channel="C1", ts=parent))["ok"]
    # The same method in a private channel needs that type's scope.
    private, _, _ = fake.user_says("G1", "U1", "secret")
    with pytest.raises(SlackApiError) as exc:
        await client.conversations_replies(channel="G1", ts=private)
    body = exc.value.response
    assert (body["error"], body["needed"], body["provided"]) == (
        "missing_scope",
        "groups:history",
        "chat:write,channels:history",
    )
    with pytest.raises(SlackApiError) as exc:
        await client.users_info(user=BOT_USER_ID)
    assert _error(exc) == "missing_scope" and exc.value.response["needed"] == "users:read"
    # Suggested prompts need assistant:write; the status also takes chat:write.
    await client.assistant_threads_setStatus(channel_id="D1", thread_ts="1.1", status="thinking")
    with pytest.raises(SlackApiError) as exc:
        await client.assistant_threads_setTitle(channel_id="D1", thread_ts="1.1", title="t")
    assert exc.value.response["needed"] == "assistant:write"
    # Methods without a scope (auth.test, chat.getPermalink) work with none at all.
    fake.scopes = []
    assert (await client.auth_test())["ok"]
    assert (await client.chat_getPermalink(channel="C1", message_ts=parent))["ok"]
    assert fake.channel_view("G1")[0].text == "secret"  # nothing was read or changed


def test_every_method_the_fake_serves_has_slacks_rule(fake: FakeSlack) -> None:
    # A method added to the fake needs its token types, scopes and tier in slack_rules.py.
    assert set(fake._handlers) == set(RULES)


async def test_tokens_are_checked_by_type(fake: FakeSlack) -> None:
    app = AsyncWebClient(token=APP_TOKEN, base_url=fake.api_url)
    bot = AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url)
    opened = await app.apps_connections_open(app_token=APP_TOKEN)
    assert opened["url"].startswith(fake.socket_url)
    assert opened.headers["x-oauth-scopes"] == "connections:write"
    with pytest.raises(SlackApiError) as exc:
        await bot.apps_connections_open(app_token=BOT_TOKEN)
    assert _error(exc) == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as exc:
        await app.chat_postMessage(channel="C1", text="from the app token")
    assert _error(exc) == "not_allowed_token_type"
    # A user token may post, but streams take bot tokens only.
    user = AsyncWebClient(token="xoxp-person", base_url=fake.api_url)
    fake.user_scopes = ["chat:write"]
    await user.chat_postMessage(channel="C1", text="as a person")
    with pytest.raises(SlackApiError) as exc:
        await user.chat_startStream(channel="D1", thread_ts="1.1", markdown_text="x")
    assert _error(exc) == "not_allowed_token_type"
    fake.app_scopes = []
    with pytest.raises(SlackApiError) as exc:
        await app.apps_connections_open(app_token=APP_TOKEN)
    assert exc.value.response["needed"] == "connections:write"
    for token in ("not-a-slack-token", "xoxb-revoked"):
        fake.valid_tokens = {BOT_TOKEN}
        with pytest.raises(SlackApiError) as exc:
            await AsyncWebClient(token=token, base_url=fake.api_url).auth_test()
        assert _error(exc) == "invalid_auth"
    assert [m.text for m in fake.channel_view("C1")] == ["as a person"]


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


async def test_guests_and_users_of_other_organisations(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.add_user("UMEM", "Member")
    fake.add_user("UMCG", "Multi", is_restricted=True)
    fake.add_user("USCG", "Single", is_ultra_restricted=True)
    fake.add_user("UEXT", "Other", team_id="T9")
    users = {u: (await client.users_info(user=u))["user"] for u in fake.users if u != BOT_USER_ID}
    assert {u: (v["is_restricted"], v["is_ultra_restricted"]) for u, v in users.items()} == {
        "UMEM": (False, False),
        "UMCG": (True, False),
        "USCG": (True, True),  # Slack marks single-channel guests restricted too
        "UEXT": (False, False),
    }
    assert {u: (v["team_id"], v["profile"]["team"]) for u, v in users.items()} == {
        "UMEM": (TEAM_ID, TEAM_ID),
        "UMCG": (TEAM_ID, TEAM_ID),
        "USCG": (TEAM_ID, TEAM_ID),
        "UEXT": ("T9", "T9"),
    }


async def test_ephemeral_notices_are_seen_by_one_person_only(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    parent, _, _ = fake.user_says("C1", "U1", "<@UBOT> hi")
    response = await client.chat_postEphemeral(
        channel="C1", user="U1", text="only you", thread_ts=parent
    )
    await client.chat_postEphemeral(channel="C1", user="U2", text="you too")
    assert response["message_ts"]
    assert [(e.channel, e.user, e.text, e.thread_ts) for e in fake.ephemerals] == [
        ("C1", "U1", "only you", parent),
        ("C1", "U2", "you too", None),
    ]
    assert [e.text for e in fake.ephemerals_to("U1")] == ["only you"]
    assert [m.text for m in fake.channel_view("C1")] == ["<@UBOT> hi"]  # nobody else sees them
    with pytest.raises(SlackApiError) as exc:
        await client.api_call("chat.postEphemeral", json={"channel": "C1", "user": "U1"})
    assert _error(exc) == "no_text"


async def test_usergroup_members_need_the_scope(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_usergroup("SOPS", ["U1", "U2"])
    with pytest.raises(SlackApiError) as exc:
        await client.usergroups_users_list(usergroup="SOPS")
    assert _error(exc) == "missing_scope" and exc.value.response["needed"] == "usergroups:read"
    fake.scopes.append("usergroups:read")
    assert (await client.usergroups_users_list(usergroup="SOPS"))["users"] == ["U1", "U2"]
    with pytest.raises(SlackApiError) as exc:
        await client.usergroups_users_list(usergroup="S404")
    assert _error(exc) == "no_such_subteam"


def test_events_carry_files_and_the_authors_team(fake: FakeSlack) -> None:
    _, message, mention = fake.user_says(
        "C1", "UEXT", "<@UBOT> see this", files=["log.txt", "shot.png"], user_team="T9"
    )
    assert mention is not None
    for body in (message, mention):
        event = body["event"]
        assert [f["name"] for f in event["files"]] == ["log.txt", "shot.png"]
        assert (event["user_team"], event["source_team"], event["team"]) == ("T9", "T9", "T9")
        assert body["team_id"] == TEAM_ID  # the workspace the event is delivered to
    assert message["event"]["subtype"] == "file_share"
    assert "subtype" not in mention["event"]
    _, plain, _ = fake.user_says("C1", "U1", "no files")
    assert not {"files", "user_team", "subtype"} & set(plain["event"])


async def test_channels_are_named_kinded_and_renamed(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.add_channel("C1", "support")
    fake.add_channel("G1", "ops", kind="group")
    fake.add_channel("C2", "", kind="mpim")

    async def info(channel: str) -> dict[str, Any]:
        found: dict[str, Any] = (await client.conversations_info(channel=channel))["channel"]
        return found

    assert {k: v for k, v in (await info("C1")).items() if k.startswith("is_")} == {
        "is_channel": True,
        "is_group": False,
        "is_im": False,
        "is_mpim": False,
        "is_private": False,
        "is_member": True,
    }
    assert ((await info("G1"))["is_private"], (await info("G1"))["name"]) == (True, "ops")
    assert (await info("C2"))["is_mpim"] and not (await info("C2"))["is_channel"]
    with pytest.raises(SlackApiError) as exc:
        await info("D1")  # a DM's info needs im:read, which the app did not ask for
    assert exc.value.response["needed"] == "im:read"
    fake.scopes.append("im:read")
    assert (await info("D1"))["is_im"] and "name" not in await info("D1")
    renamed = fake.rename_channel("C1", "help-desk")
    assert renamed["event"]["type"] == "channel_rename"
    assert renamed["event"]["channel"]["id"] == "C1"
    assert renamed["event"]["channel"]["name"] == "help-desk"
    assert (await info("C1"))["name"] == "help-desk"
    assert fake.rename_channel("G1", "ops-2")["event"]["type"] == "group_rename"


async def test_permalinks(fake: FakeSlack, client: AsyncWebClient) -> None:
    parent, _, _ = fake.user_says("C1", "U1", "hello")
    reply = await client.chat_postMessage(channel="C1", thread_ts=parent, text="hi")
    root = (await client.chat_getPermalink(channel="C1", message_ts=parent))["permalink"]
    assert root == f"{WORKSPACE_URL}archives/C1/p{parent.replace('.', '')}"
    assert (await client.auth_test())["url"] == WORKSPACE_URL
    inner = (await client.chat_getPermalink(channel="C1", message_ts=reply["ts"]))["permalink"]
    assert inner.endswith(f"?thread_ts={parent}&cid=C1")
    with pytest.raises(SlackApiError) as exc:
        await client.chat_getPermalink(channel="C1", message_ts="9.9")
    assert _error(exc) == "message_not_found"


async def test_reactions_change_the_message_and_make_events(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    parent, _, _ = fake.user_says("C1", "U1", "hello")
    answer = str((await client.chat_postMessage(channel="C1", thread_ts=parent, text="hi"))["ts"])
    added = fake.react("C1", answer, "U1", "+1")
    fake.react("C1", answer, "U2", "+1")
    fake.react("C1", answer, "U1", "+1")  # already there: still an event, no change
    message = fake.message("C1", answer)
    assert message is not None and message.reactions == {"+1": ["U1", "U2"]}
    event = added["event"]
    assert event == {
        "type": "reaction_added",
        "user": "U1",
        "reaction": "+1",
        "item": {"type": "message", "channel": "C1", "ts": answer},
        "item_user": BOT_USER_ID,
        "event_ts": event["event_ts"],
    }
    removed = fake.unreact("C1", answer, "U1", "+1")
    fake.unreact("C1", answer, "U2", "+1")
    assert removed["event"]["type"] == "reaction_removed" and message.reactions == {}
    assert fake.react("C1", parent, "U2", "tada")["event"]["item_user"] == "U1"
    with pytest.raises(ValueError):
        fake.react("C1", "9.9", "U1", "+1")


async def test_assistant_threads(fake: FakeSlack, client: AsyncWebClient) -> None:
    thread, started = fake.open_assistant_thread("D1", "U1", context_channel="C1")
    event = started["event"]
    assert event["type"] == "assistant_thread_started"
    assert event["assistant_thread"]["channel_id"] == "D1"
    assert event["assistant_thread"]["thread_ts"] == thread
    assert event["assistant_thread"]["context"]["channel_id"] == "C1"
    (opening,) = fake.thread_view("D1", thread)
    assert opening.subtype == "assistant_app_thread" and opening.bot_id == BOT_ID
    prompts = [{"title": "Week", "message": "Summarise my week"}]
    await client.assistant_threads_setSuggestedPrompts(
        channel_id="D1", thread_ts=thread, prompts=prompts
    )
    await client.assistant_threads_setTitle(channel_id="D1", thread_ts=thread, title="A title")
    assert [(s.channel, s.thread_ts, s.prompts) for s in fake.suggested] == [
        ("D1", thread, prompts)
    ]
    assert fake.titles == {("D1", thread): "A title"}
    for bad in ([], [{"title": "no message"}], prompts * 5):
        with pytest.raises(SlackApiError) as exc:
            await client.assistant_threads_setSuggestedPrompts(
                channel_id="D1", thread_ts=thread, prompts=bad
            )
        assert _error(exc) == "invalid_arguments"


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


# -- (e) faults: streams Slack or a person ends, tiers, storms, holds, pings --------------


async def _stream(client: AsyncWebClient, text: str = "Hel") -> str:
    started = await client.chat_startStream(channel="D1", thread_ts="1.000100", markdown_text=text)
    return str(started["ts"])


async def test_stream_max_age_ends_the_stream(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.stream_max_age = 0.3
    ts = await _stream(client)
    await client.chat_appendStream(channel="D1", ts=ts, markdown_text="lo")
    await asyncio.sleep(0.35)
    # A person sees the stream end by itself, with what was streamed so far.
    (reply,) = fake.channel_view("D1")
    assert (reply.text, reply.stream_state, reply.stream_ended_by) == ("Hello", "stopped", "slack")
    for call in (client.chat_appendStream, client.chat_stopStream):
        with pytest.raises(SlackApiError) as exc:
            await call(channel="D1", ts=ts, markdown_text=" more")
        assert _error(exc) == "message_not_in_streaming_state"
    assert fake.channel_view("D1")[0].text == "Hello"
    await client.chat_update(channel="D1", ts=ts, markdown_text="Hello world")
    assert fake.channel_view("D1")[0].versions == ["Hel", "Hello", "Hello world"]
    # A younger stream is untouched.
    young = await _stream(client, "new")
    await client.chat_stopStream(channel="D1", ts=young, markdown_text="!")
    assert fake.message("D1", young) is not None
    assert fake.message("D1", young).stream_ended_by == "app"  # type: ignore[union-attr]


async def test_user_stops_a_stream(fake: FakeSlack, client: AsyncWebClient) -> None:
    ts = await _stream(client)
    with pytest.raises(ValueError):
        fake.stop_stream_by_user("D1", "9.9")
    fake.stop_stream_by_user("D1", ts)
    (reply,) = fake.channel_view("D1")
    assert (reply.text, reply.stream_state, reply.stream_ended_by) == ("Hel", "stopped", "user")
    with pytest.raises(SlackApiError) as exc:
        await client.chat_appendStream(channel="D1", ts=ts, markdown_text="lo")
    assert _error(exc) == "stopped_by_user"
    with pytest.raises(SlackApiError) as exc:
        await client.chat_stopStream(channel="D1", ts=ts)
    assert _error(exc) == "message_not_in_streaming_state"
    assert fake.channel_view("D1")[0].text == "Hel"
    await client.chat_update(channel="D1", ts=ts, markdown_text="Hel (stopped)")
    assert fake.channel_view("D1")[0].text == "Hel (stopped)"

    fake.user_stops_streams_after = 0.2
    later = await _stream(client, "second")
    await client.chat_appendStream(channel="D1", ts=later, markdown_text=" part")
    await asyncio.sleep(0.25)
    with pytest.raises(SlackApiError) as exc:
        await client.chat_appendStream(channel="D1", ts=later, markdown_text=" lost")
    assert _error(exc) == "stopped_by_user"
    assert fake.message("D1", later).text == "second part"  # type: ignore[union-attr]


async def test_tiers_are_off_by_default(fake: FakeSlack, client: AsyncWebClient) -> None:
    for _ in range(25):
        await client.chat_postMessage(channel="C1", text="x")
    assert fake.rate_limited == []


async def test_tier_limits_per_method_and_window(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.enforce_tiers = True
    # Slack's counts in four seconds instead of a minute: room for a loaded machine to
    # make the 75 calls inside one window.
    fake.tier_window = 4.0
    fake.add_user("U1", "Ada")
    started = time.monotonic()
    for _ in range(20):  # Tier 2
        await _stream(client)
    with pytest.raises(SlackApiError) as exc:
        await _stream(client)
    assert exc.value.response.status_code == 429 and _error(exc) == "ratelimited"
    assert exc.value.response.headers["Retry-After"] in {"1", "2", "3", "4"}
    assert fake.rate_limited == [fake.calls[-1]]
    for _ in range(50):  # Tier 3, counted apart from chat.startStream
        await client.conversations_info(channel="C1")
    with pytest.raises(SlackApiError) as exc:
        await client.conversations_info(channel="C1")
    assert exc.value.response.status_code == 429
    # chat.postMessage: a burst of 3 per channel, then about one a second (scaled).
    for _ in range(3):
        await client.chat_postMessage(channel="C1", text="x")
    with pytest.raises(SlackApiError) as exc:
        await client.chat_postMessage(channel="C1", text="x")
    assert exc.value.response.status_code == 429
    await client.chat_postMessage(channel="C2", text="other channel")
    assert len(fake.rate_limited) == 3 and len(fake.channel_view("C1")) == 3
    # Refused calls do not count: once the window has moved on, the method works again.
    await asyncio.sleep(max(0.0, started + 4.05 - time.monotonic()))
    await _stream(client)
    await client.chat_postMessage(channel="C1", text="x")


async def test_storm(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_user("U1", "Ada")
    posted = await client.chat_postMessage(channel="C1", text="a")
    fake.storm(1.5)
    with pytest.raises(SlackApiError) as exc:
        await client.chat_update(channel="C1", ts=posted["ts"], text="b")
    assert exc.value.response.status_code == 429
    assert exc.value.response.headers["Retry-After"] == "2"
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel="C2", text="c")
    await client.users_info(user="U1")  # not a chat.* method
    assert [c.method for c in fake.rate_limited] == ["chat.update", "chat.postMessage"]
    await asyncio.sleep(1.5)
    await client.chat_update(channel="C1", ts=posted["ts"], text="b")
    assert fake.channel_view("C1")[0].text == "b"


async def test_hold_and_release(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_user("U1", "Ada")
    fake.add_user("U2", "Bob")
    fake.hold("users.info", when=lambda p: p.get("user") == "U1")
    held = asyncio.create_task(client.users_info(user="U1"))
    await fake.wait_for(lambda: fake.held, what="the held call")
    assert (await client.users_info(user="U2"))["user"]["id"] == "U2"  # not matched
    await asyncio.sleep(0.1)
    assert not held.done() and [c.params["user"] for c in fake.held] == ["U1"]
    fake.release("users.info")
    assert (await held)["user"]["id"] == "U1"
    assert fake.held == [] and fake.dropped == []


async def test_held_call_of_a_client_that_left_is_never_applied(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    # What a SIGKILLed process's last call looks like: sent, never answered, never applied.
    fake.hold("chat.postMessage")
    task = asyncio.create_task(client.chat_postMessage(channel="C1", text="last words"))
    await fake.wait_for(lambda: fake.held, what="the held call")
    task.cancel()  # the client closes its connection
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.1)
    fake.release("chat.postMessage")
    await fake.wait_for(lambda: fake.dropped, what="the dropped call")
    assert [c.params["text"] for c in fake.dropped] == ["last words"]
    assert fake.channel_view("C1") == []
    await client.chat_postMessage(channel="C1", text="after release")
    assert [m.text for m in fake.channel_view("C1")] == ["after release"]


async def test_delay(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_user("U1", "Ada")
    fake.add_user("U2", "Bob")
    fake.delay("users.info", 0.3, when=lambda p: p.get("user") == "U1")
    started = time.monotonic()
    await client.users_info(user="U2")
    assert time.monotonic() - started < 0.25
    await client.users_info(user="U1")
    assert time.monotonic() - started >= 0.3
    fake.delay("users.info", 0)
    started = time.monotonic()
    await client.users_info(user="U1")
    assert time.monotonic() - started < 0.25


async def test_pings(fake: FakeSlack, client: AsyncWebClient) -> None:
    await client.chat_postMessage(channel="C1", text="all quiet")
    loud = await client.chat_postMessage(channel="C1", text="hey <!here|here> and <@U123>")
    await client.chat_update(channel="C1", ts=loud["ts"], text="calmed down")
    subteam = await client.chat_postMessage(channel="C1", text="<!subteam^S1|@devs> <@W9>")
    await client.chat_postMessage(channel="C1", text="&lt;!channel&gt; <!date^1|x> @channel")
    fake.user_says("C1", "U1", "<!everyone> from a person")  # only the bot's messages count
    found = [(m.ts, form) for m, form in fake.pings("C1")]
    assert found == [
        (loud["ts"], "<!here|here>"),  # an earlier version still pinged
        (loud["ts"], "<@U123>"),
        (subteam["ts"], "<!subteam^S1|@devs>"),
        (subteam["ts"], "<@W9>"),
    ]
    stream = await client.chat_startStream(channel="D1", thread_ts="1.1", markdown_text="<!chan")
    await client.chat_appendStream(channel="D1", ts=stream["ts"], markdown_text="nel>")
    assert [form for _, form in fake.pings("D1")] == ["<!channel>"]
    assert fake.pings("C2") == []


# -- (f) delivery: the 3-second deadline and Slack's redeliveries ----------------------


@pytest.fixture
async def raw_app() -> AsyncIterator[tuple[str, list[tuple[str, str]], list[web.Response]]]:
    """An HTTP endpoint answering from a script (a delay in seconds, or a response) and
    recording each request's (X-Slack-Retry-Num, X-Slack-Retry-Reason)."""
    seen: list[tuple[str, str]] = []
    script: list[Any] = []

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        seen.append(
            (
                request.headers.get("X-Slack-Retry-Num", ""),
                request.headers.get("X-Slack-Retry-Reason", ""),
            )
        )
        step = script.pop(0) if script else web.Response(status=200)
        if isinstance(step, float):
            await asyncio.sleep(step)
            return web.Response(status=200)
        assert isinstance(step, web.Response)
        return step

    app = web.Application()
    app.router.add_post("/slack/events", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events", seen, script
    await runner.cleanup()


async def test_http_events_are_redelivered_until_acknowledged(
    fake: FakeSlack, raw_app: tuple[str, list[tuple[str, str]], list[Any]]
) -> None:
    url, seen, script = raw_app
    fake.ack_deadline = 0.3  # Slack's 3 s, shortened
    fake.retry_scale = 0.001  # Slack's 1- and 5-minute waits, shortened
    _, _, mention = fake.user_says("C1", "U1", "<@UBOT> hi")
    assert mention is not None
    # Too slow, then an error, then acknowledged.
    script.extend([0.6, web.Response(status=500)])
    delivery = await fake.deliver_event(url, mention, SECRET)
    assert delivery.acknowledged
    assert [(a.retry_num, a.reason) for a in delivery.attempts] == [
        (0, ""),
        (1, "http_timeout"),
        (2, "http_error"),
    ]
    assert seen == [("", ""), ("1", "http_timeout"), ("2", "http_error")]
    # The slow first answer still arrives, after the retry went out.
    await fake.wait_for(lambda: delivery.attempts[0].status == 200, what="the late answer")

    # An app that keeps failing gets the event 4 times in all, then Slack gives up.
    seen.clear()
    script.extend(web.Response(status=503) for _ in range(4))
    failed = await fake.deliver_event(url, mention, SECRET)
    assert not failed.acknowledged
    assert seen == [("", ""), ("1", "http_error"), ("2", "http_error"), ("3", "http_error")]

    # X-Slack-No-Retry: 1 on an error stops the retries.
    seen.clear()
    script.append(web.Response(status=500, headers={"X-Slack-No-Retry": "1"}))
    stopped = await fake.deliver_event(url, mention, SECRET)
    assert not stopped.acknowledged and seen == [("", "")]
    assert fake.deliveries == [delivery, failed, stopped]


async def test_socket_envelopes_not_acked_in_time_are_sent_again(fake: FakeSlack) -> None:
    fake.ack_deadline = 0.3
    fake.retry_scale = 0.001
    _, message, _ = fake.user_says("D1", "U1", "hello")
    async with aiohttp.ClientSession() as session, session.ws_connect(fake.socket_url) as ws:
        assert (await ws.receive_json())["type"] == "hello"
        sending = asyncio.create_task(fake.send_event(message))
        first = await ws.receive_json()  # not acknowledged
        second = await ws.receive_json()
        await ws.send_json({"envelope_id": second["envelope_id"]})
        envelope_id = await sending
    assert (first["retry_attempt"], first["retry_reason"]) == (0, "")
    assert (second["retry_attempt"], second["retry_reason"]) == (1, "timeout")
    assert second["payload"] == first["payload"] == message
    assert second["envelope_id"] != first["envelope_id"] == envelope_id
    assert fake.envelope(second["envelope_id"]).acked_at is not None
    assert fake.envelope(first["envelope_id"]).acked_at is None
    assert [(a.retry_num, a.status) for a in fake.deliveries[-1].attempts] == [(0, None), (1, 200)]


async def test_spread_events_sends_each_event_to_one_of_the_open_connections(
    fake: FakeSlack,
) -> None:
    fake.spread_events = True  # several replicas of one app: each event goes to one of them
    got: list[list[str]] = [[], []]

    async def replica(n: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in ws:
            envelope = frame.json()
            if envelope.get("type") == "events_api":
                got[n].append(envelope["payload"]["event"]["text"])
                await ws.send_json({"envelope_id": envelope["envelope_id"]})

    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(fake.socket_url) as first,
        session.ws_connect(fake.socket_url) as second,
    ):
        readers = [asyncio.create_task(replica(n, ws)) for n, ws in enumerate((first, second))]
        await fake.wait_for(lambda: len(fake._open_sockets()) == 2, what="two connections")
        for n in range(20):
            _, message, _ = fake.user_says("C1", "U1", f"question {n}")
            await fake.send_event(message)
        for reader in readers:
            reader.cancel()
    assert sorted(got[0] + got[1]) == sorted(f"question {n}" for n in range(20))  # each once
    assert got[0] and got[1]  # both connections had some


# -- files ---------------------------------------------------------------------------


async def _get(url: str, token: str | None = None) -> tuple[int, str, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, response.content_type, await response.read()


async def test_a_shared_file_is_served_only_for_the_bot_token(fake: FakeSlack) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 200
    shot = fake.add_file("shot.png", png)
    _, body, _ = fake.user_says("C1", "U1", "<@UBOT> look", files=[shot])
    (obj,) = body["event"]["files"]
    assert (obj["name"], obj["mimetype"], obj["filetype"], obj["size"], obj["mode"]) == (
        "shot.png",
        "image/png",
        "png",
        len(png),
        "hosted",
    )
    url = obj["url_private_download"]
    assert await _get(url, BOT_TOKEN) == (200, "image/png", png)
    # No token, a wrong one, or one without files:read: Slack's sign-in page, not the file.
    fake.valid_tokens = {BOT_TOKEN}
    for token in (None, "xoxb-wrong"):
        status, kind, page = await _get(url, token)
        assert (status, kind) == (200, "text/html") and b"Sign in" in page
    fake.scopes.remove("files:read")
    assert (await _get(url, BOT_TOKEN))[1] == "text/html"
    assert [authorised for _, authorised in fake.file_store.downloads] == [
        True,
        False,
        False,
        False,
    ]


async def test_removed_and_hidden_files_are_not_served(fake: FakeSlack) -> None:
    gone = fake.add_file("old.pdf", removed=True)
    hidden = fake.add_file("older.pdf", mode="hidden_by_limit")
    _, body, _ = fake.user_says("C1", "U1", "<@UBOT> x", files=[gone, hidden])
    for obj in body["event"]["files"]:
        assert (await _get(obj["url_private_download"], BOT_TOKEN))[0] == 404
    assert body["event"]["files"][1]["mode"] == "hidden_by_limit"
    hidden.mode, hidden.forbidden = "hosted", True
    assert (await _get(body["event"]["files"][1]["url_private_download"], BOT_TOKEN))[0] == 403


async def test_slack_connect_files_need_files_info(fake: FakeSlack, client: AsyncWebClient) -> None:
    shared = fake.add_file("their.txt", connect=True)
    private = fake.add_file("secret.txt", connect=True, info_refused=True)
    _, body, _ = fake.user_says("C1", "UEXT", "<@UBOT> x", files=[shared, private])
    assert body["event"]["files"][0] == {
        "id": shared.id,
        "mode": "file_access",
        "file_access": "check_file_info",
        "created": 0,
        "timestamp": 0,
        "user": "",
    }
    info = await client.files_info(file=shared.id)
    assert info["file"]["name"] == "their.txt" and info["file"]["url_private_download"]
    with pytest.raises(SlackApiError) as exc:
        await client.files_info(file=private.id)
    assert _error(exc) == "file_not_found"
    fake.scopes.remove("files:read")
    with pytest.raises(SlackApiError) as exc:
        await client.files_info(file=shared.id)
    assert _error(exc) == "missing_scope" and exc.value.response["needed"] == "files:read"


async def test_files_upload_v2_shows_the_file_in_the_thread(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    thread, _, _ = fake.user_says("C1", "U1", "<@UBOT> draw a cat")
    data = b"\x89PNG\r\n\x1a\n" + b"cat" * 10_000
    done = await client.files_upload_v2(
        channel="C1", thread_ts=thread, file=data, filename="cat.png", title="A cat"
    )
    (started,) = fake.calls_of("files.getUploadURLExternal")
    assert started.params["length"] == str(len(data))
    (shown,) = fake.bot_replies("C1", thread)
    (file_id,) = shown.files
    assert done["files"][0]["id"] == file_id
    assert fake.file_data(file_id) == data
    replies = await client.conversations_replies(channel="C1", ts=thread)
    (obj,) = replies["messages"][1]["files"]
    assert (obj["title"], obj["name"], obj["mimetype"]) == ("A cat", "cat.png", "image/png")
    assert await _get(obj["url_private_download"], BOT_TOKEN) == (200, "image/png", data)


async def test_uploads_need_files_write_and_the_bytes(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    started = await client.files_getUploadURLExternal(filename="a.txt", length=3)
    with pytest.raises(SlackApiError) as exc:  # the bytes never went to upload_url
        await client.files_completeUploadExternal(
            files=[{"id": started["file_id"]}], channel_id="C1"
        )
    assert _error(exc) == "file_upload_not_completed"
    assert fake.channel_view("C1") == []
    fake.scopes.remove("files:write")
    with pytest.raises(SlackApiError) as exc:
        await client.files_upload_v2(channel="C1", content="hi", filename="a.txt")
    assert _error(exc) == "missing_scope" and exc.value.response["needed"] == "files:write"
