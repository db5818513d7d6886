"""What reaches Bolt in HTTP mode: ``POST /slack/events`` screened before anything parses
it (size, signature, age, UTF-8 JSON), 503 while the adapter is not serving, and Slack's
retry headers passed through."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.screening import EVENTS_PATH, EventsEndpoint, Rejected, screen
from adapters.web import WebServer
from tests.fakes.slack_server import FakeSlack
from tests.fakes.slack_signing import signed_headers

SECRET = "signing-secret"


def signed(body: bytes, secret: str = SECRET, age: int = 0) -> dict[str, str]:
    return signed_headers(body, secret, age=age)


@dataclass
class Endpoint:
    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)  # events Bolt's listener got
    retries: list[str | None] = field(default_factory=list)  # their X-Slack-Retry-Num
    not_serving: str | None = None


@pytest.fixture
async def endpoint(fake: FakeSlack) -> AsyncIterator[Endpoint]:
    app = AsyncApp(
        client=AsyncWebClient(token="xoxb-test", base_url=fake.api_url),
        signing_secret=SECRET,
        request_verification_enabled=False,  # the endpoint checked it on the raw bytes
        process_before_response=True,
    )
    server = WebServer()
    state = Endpoint("")

    @app.event("message")
    async def message(body: dict[str, Any], request: Any) -> None:
        state.seen.append(body)
        state.retries.append((request.headers.get("x-slack-retry-num") or [None])[0])

    server.add_route(
        "POST", EVENTS_PATH, EventsEndpoint(app, SECRET, lambda: state.not_serving).handle
    )
    await server.start("127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.port}{EVENTS_PATH}"
    yield state
    await server.stop()


async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as got,
    ):
        return got.status, await got.text()


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b'{"type": "event_callback", "x": "\xff"}', {}, 400),  # not UTF-8
        (b'{"type": "event_callback", ', {}, 400),  # not JSON
        (b"[1, 2]", {}, 400),  # JSON, not an object
        (b"[" * 100_000, {}, 400),  # nested past the parser's depth
        (b'{"type": "event_callback", "event": "x"}', {}, 400),
        (b'{"a": "' + b"x" * (1024 * 1024) + b'"}', {}, 413),
        (b'{"type": "event_callback"}', {"secret": "wrong"}, 401),
        (b'{"type": "event_callback"}', {"age": 3600}, 401),  # a replay
        (b'{"type": "event_callback"}', {"X-Slack-Request-Timestamp": "1e9"}, 401),
        (b'{"type": "event_callback"}', {"X-Slack-Signature": "v0=é"}, 401),
        (b'{"type": "event_callback", "event": {"type": "foo"}}', {}, 404),  # Bolt: unhandled
    ],
)
async def test_hostile_requests_get_a_clean_4xx(
    endpoint: Endpoint,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    headers: dict[str, Any],
    status: int,
) -> None:
    sign = {k: headers.pop(k) for k in ("secret", "age") if k in headers}
    got, _ = await post(endpoint.url, body, signed(body, **sign) | headers)
    assert got == status
    assert "Traceback" not in caplog.text and endpoint.seen == []
    # Nothing unsigned reaches Bolt, whose own check would log the whole body.
    assert "event_callback" not in caplog.text or status == 404


async def test_url_verification_still_answers_the_challenge(
    fake: FakeSlack, endpoint: Endpoint
) -> None:
    challenge = {"type": "url_verification", "challenge": "c-123", "token": "t"}
    status, text = await fake.post_event(endpoint.url, challenge, SECRET)
    assert (status, json.loads(text)) == (200, {"challenge": "c-123"})


@pytest.mark.parametrize("why", ["starting", "stopping"])
async def test_not_serving_answers_503_so_slack_delivers_again(
    fake: FakeSlack, endpoint: Endpoint, why: str
) -> None:
    _, body, _ = fake.user_says("C1", "U1", "hello")
    endpoint.not_serving = why
    status, text = await fake.post_event(endpoint.url, body, SECRET)
    assert (status, json.loads(text)["error"]) == (503, why)
    assert endpoint.seen == []
    endpoint.not_serving = None
    assert (await fake.post_event(endpoint.url, body, SECRET, retry_num=1))[0] == 200
    assert [e["event"]["text"] for e in endpoint.seen] == ["hello"]


async def test_retry_headers_reach_bolt(fake: FakeSlack, endpoint: Endpoint) -> None:
    _, body, _ = fake.user_says("C1", "U1", "again")
    assert (await fake.post_event(endpoint.url, body, SECRET, retry_num=2))[0] == 200
    assert endpoint.retries == ["2"]


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "no valid timestamp"),
        ({"X-Slack-Request-Timestamp": "1700000000"}, "stale timestamp"),
        ({"X-Slack-Request-Timestamp": str(10**13)}, "no valid timestamp"),
    ],
)
def test_screen_names_why_without_the_secret(headers: dict[str, str], why: str) -> None:
    with pytest.raises(Rejected, match=why) as refused:
        screen(b"{}", headers, SECRET, now=1_800_000_000)
    assert refused.value.status == 401 and SECRET not in str(refused.value)


def test_screen_gives_the_signed_body_as_text() -> None:
    body = '{"type": "event_callback", "event": {"text": "é"}}'.encode()
    assert screen(body, signed(body), SECRET) == body.decode()
