"""The Open WebUI client's sign-in, against an in-process fake (httpx.MockTransport):
renewal is single flight, a pasted JWT that expired says how to fix it, and
no secret shows in any repr."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from bridge.errors import AuthRejected, ReleaseUnsupported
from bridge.openwebui.client import (
    Credentials,
    OpenWebUIClient,
    ServerInfo,
    jwt_expired,
    jwt_expiry,
)

EMAIL = "bot@example.com"
PASSWORD = "pw-Very-Secret-1"
API_KEY = "sk-very-secret-key"


def make_jwt(exp: float | None, subject: str = "user-1") -> str:
    """A JWT-shaped token (unsigned: the client never verifies, the server does)."""

    def part(data: dict[str, object]) -> str:
        raw = json.dumps(data).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    claims: dict[str, object] = {"id": subject}
    if exp is not None:
        claims["exp"] = int(exp)
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


class FakeOpenWebUI:
    """Accepts exactly one token at a time; every sign-in issues a new one."""

    def __init__(self) -> None:
        self.valid: str | None = None
        self.signins = 0
        self.refused: list[str] = []
        # Requests with a refused token wait here, so the test decides when the
        # 401s come back: all of them together.
        self.hold_refusals: asyncio.Event | None = None
        self.waiting = 0

    def expire(self) -> None:
        self.valid = None

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/version":
            return httpx.Response(200, json={"version": "0.12.4"})
        if path == "/api/v1/auths/signin":
            body = json.loads(request.content)
            if body != {"email": EMAIL, "password": PASSWORD}:
                return httpx.Response(400, json={"detail": "The email or password is incorrect."})
            self.signins += 1
            await asyncio.sleep(0.02)  # a real sign-in takes a moment: others pile up
            self.valid = make_jwt(time.time() + 3600, subject=f"signin-{self.signins}")
            return httpx.Response(200, json={"token": self.valid})
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token != self.valid:
            self.refused.append(token)
            if self.hold_refusals is not None:
                self.waiting += 1
                await self.hold_refusals.wait()
            return httpx.Response(401, json={"detail": "Your session has expired."})
        return httpx.Response(200, json={"data": [{"id": "fake-model"}]})


def client_for(fake: FakeOpenWebUI, credentials: Credentials) -> OpenWebUIClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handle))
    return OpenWebUIClient("http://owui.test", credentials, http=http, retries=0)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


async def test_concurrent_401s_sign_in_once_and_all_retry_with_the_new_token() -> None:
    fake = FakeOpenWebUI()
    client = client_for(fake, Credentials(email=EMAIL, password=PASSWORD))
    await client.connect()
    first = client.current_jwt()
    assert fake.signins == 1 and first is not None

    fake.expire()  # the sign-in token expires while the bridge runs
    fake.hold_refusals = asyncio.Event()
    requests = [asyncio.create_task(client.models()) for _ in range(6)]
    await until(lambda: fake.waiting == 6)  # all six are refused at the same moment
    fake.hold_refusals.set()
    results = await asyncio.gather(*requests)

    assert all(r == [{"id": "fake-model"}] for r in results)
    assert fake.signins == 2  # one renewal for six refusals
    assert client.current_jwt() not in (None, first)
    await client.aclose()


async def test_a_request_refused_with_an_old_token_retries_without_signing_in() -> None:
    fake = FakeOpenWebUI()
    client = client_for(fake, Credentials(email=EMAIL, password=PASSWORD))
    await client.connect()
    fake.expire()
    delayed = fake.hold_refusals = asyncio.Event()
    slow = asyncio.create_task(client.models())  # sent with the old token, answer delayed
    await until(lambda: fake.waiting == 1)
    fake.hold_refusals = None
    await client.models()  # refused, renews
    assert fake.signins == 2
    # The delayed 401 arrives after the renewal: a retry, not another sign-in.
    delayed.set()
    assert await asyncio.wait_for(slow, 5) == [{"id": "fake-model"}]
    assert fake.signins == 2
    await client.aclose()


async def test_renew_jwt_is_shared_by_concurrent_callers() -> None:
    fake = FakeOpenWebUI()
    client = client_for(fake, Credentials(email=EMAIL, password=PASSWORD))
    await client.connect()
    stale = client.current_jwt()
    tokens = await asyncio.gather(*(client.renew_jwt(stale) for _ in range(5)))
    assert fake.signins == 2
    assert set(tokens) == {client.current_jwt()} and stale not in tokens
    await client.aclose()


async def test_a_pasted_jwt_that_expired_is_refused_with_the_fix() -> None:
    fake = FakeOpenWebUI()
    token = make_jwt(time.time() - 60)
    client = client_for(fake, Credentials(token=token))

    with pytest.raises(AuthRejected) as failure:
        await client.connect()

    message = str(failure.value)
    assert "expired at" in message
    assert "OPENWEBUI_EMAIL" in message and "OPENWEBUI_PASSWORD" in message
    assert "OPENWEBUI_API_KEY" in message  # or paste a new token / an API key
    assert token not in message
    assert fake.signins == 0
    await client.aclose()


async def test_a_pasted_jwt_the_server_stops_accepting_says_what_to_do() -> None:
    fake = FakeOpenWebUI()
    token = make_jwt(time.time() + 3600)  # the claim says valid; the server disagrees
    client = client_for(fake, Credentials(token=token))
    await client.connect()

    with pytest.raises(AuthRejected) as failure:
        await client.models()

    message = str(failure.value)
    assert "GET /api/models answered 401" in message
    assert "OPENWEBUI_EMAIL" in message and "OPENWEBUI_PASSWORD" in message
    assert token not in message
    assert fake.refused == [token]  # asked once, no sign-in attempted
    with pytest.raises(AuthRejected, match="OPENWEBUI_EMAIL"):
        await client.renew_jwt(token)
    assert fake.signins == 0
    await client.aclose()


async def test_an_api_key_refused_is_not_called_a_jwt() -> None:
    fake = FakeOpenWebUI()
    client = client_for(fake, Credentials(token=API_KEY))
    await client.connect()
    with pytest.raises(AuthRejected) as failure:
        await client.models()
    assert "JWT" not in str(failure.value) and "401" in str(failure.value)
    assert API_KEY not in str(failure.value)
    await client.aclose()


async def test_no_secret_in_any_repr() -> None:
    fake = FakeOpenWebUI()
    for credentials in (
        Credentials(token=API_KEY),
        Credentials(email=EMAIL, password=PASSWORD),
        Credentials(token=make_jwt(time.time() + 60), email=EMAIL, password=PASSWORD),
    ):
        client = client_for(fake, credentials)
        await client.connect()
        secrets = [s for s in (credentials.token, credentials.password, client.jwt) if s]
        assert secrets
        shown = [repr(credentials), str(credentials), repr(client), str(client)]
        for text in shown:
            for secret in secrets:
                assert secret not in text, text
        assert client.auth_mode in repr(client)
        await client.aclose()


def test_jwt_expiry_reads_the_exp_claim() -> None:
    exp = time.time() + 90
    assert jwt_expiry(make_jwt(exp)) == datetime.fromtimestamp(int(exp), UTC)
    assert not jwt_expired(make_jwt(exp))
    assert jwt_expired(make_jwt(exp), margin=120)
    assert jwt_expired(make_jwt(time.time() - 1))
    # Nothing to read: API keys, JWTs without exp (JWT_EXPIRES_IN=-1), garbage.
    for token in (API_KEY, make_jwt(None), "a.b.c", "a.!!!.c", "", None):
        assert jwt_expiry(token) is None
        assert not jwt_expired(token)


async def test_reachable_is_one_quiet_try() -> None:
    fake = FakeOpenWebUI()
    client = client_for(fake, Credentials(token=API_KEY))
    assert await client.reachable()
    assert client.requests_sent == 0  # readiness probes do not skew the request counts
    await client.aclose()

    tries: list[int] = []

    def refusing(request: httpx.Request) -> httpx.Response:
        tries.append(1)
        raise httpx.ConnectError("refused", request=request)

    client = OpenWebUIClient(
        "http://owui.test",
        Credentials(token=API_KEY),
        http=httpx.AsyncClient(transport=httpx.MockTransport(refusing)),
    )
    assert not await client.reachable()
    assert tries == [1]
    await client.aclose()


# Each boundary, one release on each side: (release, server-managed turns, completion
# names the question, server marks answers done, per-chat stop, polls show progress).
RELEASES = [
    ("0.6.15", False, False, False, False, False),
    ("0.6.40", False, False, False, False, False),
    ("0.6.41", False, True, False, False, False),
    ("0.8.10", False, True, False, False, False),
    ("0.8.11", False, True, True, False, False),
    ("0.8.12", False, True, True, False, False),
    ("0.9.0", True, True, True, True, False),
    ("0.11.0", True, True, True, True, False),
    ("0.11.1", True, True, True, True, True),
    ("0.12.4", True, True, True, True, True),
    ("v0.13.0-dev", True, True, True, True, True),
]


@pytest.mark.parametrize(("version", "managed", "names", "done", "stop", "progress"), RELEASES)
def test_each_release_gets_the_contract_its_server_has(
    version: str, managed: bool, names: bool, done: bool, stop: bool, progress: bool
) -> None:
    server = ServerInfo(version)
    assert server.supported
    assert server.server_managed_turns is managed
    assert server.answer_parent_from_request is names
    assert server.marks_answers_done is done
    assert server.stops_by_chat is stop
    assert server.polls_show_progress is progress


@pytest.mark.parametrize("version", ["0.6.14", "0.5.20", "0.1.125", "0"])
def test_releases_before_0_6_15_are_not_supported(version: str) -> None:
    assert not ServerInfo(version).supported


async def test_connecting_to_a_release_before_0_6_15_is_refused_in_one_sentence() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"version": "0.6.14"})

    client = OpenWebUIClient(
        "http://owui.test",
        Credentials(token=API_KEY),
        http=httpx.AsyncClient(transport=httpx.MockTransport(answer)),
    )
    with pytest.raises(ReleaseUnsupported) as refused:
        await client.connect()
    assert str(refused.value) == (
        "Open WebUI 0.6.14 is older than 0.6.15, the oldest release owui-bridge works with; "
        "upgrade Open WebUI"
    )
    await client.aclose()
