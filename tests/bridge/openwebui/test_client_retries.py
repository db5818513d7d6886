"""The Open WebUI client under 429s: it waits what ``Retry-After`` asks (seconds or
an HTTP date), then succeeds, or gives up after its retry budget with the status
named. The waits go through an injected sleep, so nothing here waits for real."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from bridge.errors import OpenWebUIUnavailable, RequestRejected
from bridge.openwebui.client import Credentials, OpenWebUIClient

NOW = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
MODELS = {"data": [{"id": "m"}]}


@dataclass
class Busy:
    """Answers each request with the next of ``answers`` (then 200 with ``MODELS``)."""

    answers: Iterator[httpx.Response]
    seen: list[str] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.url.path)
        return next(self.answers, httpx.Response(200, json=MODELS))


def too_many(retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(429, headers=headers, json={"detail": "Too Many Requests"})


def client_for(busy: Busy, waits: list[float], retries: int = 3) -> OpenWebUIClient:
    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    return OpenWebUIClient(
        "http://owui.test",
        Credentials(token="sk-test"),
        http=httpx.AsyncClient(transport=httpx.MockTransport(busy.handle)),
        retries=retries,
        backoff=0.5,
        sleep=sleep,
        clock=lambda: NOW,
    )


async def test_a_429_is_waited_out_as_long_as_retry_after_says_then_succeeds() -> None:
    busy = Busy(iter([too_many("7"), too_many("2")]))
    waits: list[float] = []
    client = client_for(busy, waits)
    assert await client.models() == [{"id": "m"}]
    assert waits == [7.0, 2.0]
    assert busy.seen == ["/api/models"] * 3
    await client.aclose()


async def test_a_429_that_lasts_gives_up_after_the_retry_budget_naming_it() -> None:
    busy = Busy(iter([too_many("1")] * 10))
    waits: list[float] = []
    client = client_for(busy, waits, retries=3)
    with pytest.raises(RequestRejected) as refused:
        await client.models()
    assert refused.value.status == 429
    assert str(refused.value) == "GET /api/models: 429 Too Many Requests"
    assert waits == [1.0, 1.0, 1.0]
    assert len(busy.seen) == 4  # the first try and three retries
    await client.aclose()


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        ("Tue, 14 Nov 2023 22:13:32 GMT", 12.0),  # an HTTP date 12 s from now
        ("Tue, 14 Nov 2023 22:13:20 GMT", 0.0),  # now
        ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),  # past: no wait
        ("Tue, 14 Nov 2023 22:13:25 -0000", 5.0),  # RFC 5322 "unknown zone" is UTC
        ("Tue, 14 Nov 2023 23:13:20 GMT", 30.0),  # an hour: capped, as seconds are
        ("3600", 30.0),
        ("0", 0.0),
    ],
)
async def test_retry_after_as_seconds_or_an_http_date(retry_after: str, wait: float) -> None:
    busy = Busy(iter([too_many(retry_after)]))
    waits: list[float] = []
    client = client_for(busy, waits)
    assert await client.models() == [{"id": "m"}]
    assert waits == [wait]
    await client.aclose()


@pytest.mark.parametrize("retry_after", [None, "", "soon", "1.5", "Tue, 14 Nov"])
async def test_without_a_readable_retry_after_the_client_backs_off_growing(
    retry_after: str | None,
) -> None:
    busy = Busy(iter([too_many(retry_after)] * 3))
    waits: list[float] = []
    client = client_for(busy, waits)
    assert await client.models() == [{"id": "m"}]
    # 0.5 s, then doubling, each with jitter of ±50 %.
    assert len(waits) == 3
    for attempt, wait in enumerate(waits):
        base = 0.5 * 2**attempt
        assert 0.5 * base <= wait <= 1.5 * base, (attempt, wait)
    await client.aclose()


async def test_a_completion_refused_with_429_is_sent_again_but_a_503_is_not() -> None:
    # A 429 means the server did not take it; after a 503 it may be running.
    started = {"status": True, "task_ids": ["t1"], "chat_id": "c1"}
    busy = Busy(iter([too_many("3"), httpx.Response(200, json=started)]))
    waits: list[float] = []
    client = client_for(busy, waits)
    assert await client.start_completion({"model": "m"}) == started
    assert waits == [3.0] and busy.seen == ["/api/chat/completions"] * 2
    await client.aclose()

    busy = Busy(iter([httpx.Response(503, json={"detail": "busy"})]))
    client = client_for(busy, waits := [])
    with pytest.raises(OpenWebUIUnavailable):
        await client.start_completion({"model": "m"})
    assert waits == [] and busy.seen == ["/api/chat/completions"]
    await client.aclose()
