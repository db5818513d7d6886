"""HTTP client for Open WebUI: auth, retries, and error translation at the edge.

Everything Open WebUI can throw at us becomes one of ``bridge.errors`` here;
nothing above this module sees httpx exceptions or status codes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import json as jsonlib
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from bridge import metrics
from bridge.errors import (
    AuthRejected,
    BridgeError,
    ChatGone,
    ModelUnknown,
    OpenWebUIUnavailable,
    ReleaseUnsupported,
    RequestRejected,
)
from bridge.redaction import keep_secret

log = logging.getLogger(__name__)

# Idle connections are dropped before Open WebUI's server (uvicorn: 5 s) closes them:
# a request sent on a connection the server is closing fails with no answer, and a
# completion is not retried (it may have started).
KEEPALIVE_EXPIRY = 2.0

AuthMode = Literal["api_key", "jwt"]
_RETRY_STATUS = {429, 502, 503, 504}
_MAX_RETRY_AFTER = 30.0
# 401s one request answers by retrying with a newer token (renewed by itself or
# by a concurrent request) before it gives up.
_MAX_AUTH_RETRIES = 3
_REACHABLE_TIMEOUT = 5.0  # readiness answers "now": no waiting out a slow server

# What an operator does about a pasted JWT that expired; said by the log, the
# errors and ``check`` alike.
JWT_FIX = (
    "set OPENWEBUI_EMAIL and OPENWEBUI_PASSWORD so the bridge signs in again by itself, "
    "or paste a new JWT (or an sk- API key) into OPENWEBUI_API_KEY"
)


def jwt_expiry(token: str | None) -> datetime | None:
    """When a JWT's ``exp`` claim says it expires; None for API keys, JWTs without
    ``exp`` and anything unreadable. Not verified: only for messages and for
    renewing before the server refuses, never for trusting a token."""
    parts = (token or "").split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = jsonlib.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    try:
        return datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def jwt_expired(token: str | None, *, margin: float = 0.0, now: float | None = None) -> bool:
    """True when ``token`` has an ``exp`` claim at most ``margin`` seconds from now."""
    expiry = jwt_expiry(token)
    if expiry is None:
        return False
    return expiry.timestamp() - margin <= (time.time() if now is None else now)


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """How long a ``Retry-After`` header asks to wait, from ``now`` (epoch seconds):
    delay-seconds or an HTTP date (RFC 9110, 10.2.3; proxies send dates). None when
    absent or unreadable; a date in the past is no wait."""
    value = (value or "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def describe_expiry(expiry: datetime) -> str:
    return expiry.strftime("%Y-%m-%d %H:%M:%S UTC")


# The oldest release the bridge works with: the tutorial's (older ones are refused).
OLDEST_SUPPORTED = (0, 6, 15)


@dataclass(frozen=True)
class ServerInfo:
    """The server's release and what the bridge must do differently because of it.
    Every boundary where Open WebUI changed a contract the bridge relies on is named
    here, read from the source of the releases on each side (protocol notes)."""

    version: str

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", self.version)[:3])

    @property
    def supported(self) -> bool:
        return self.version_tuple >= OLDEST_SUPPORTED

    @property
    def server_managed_turns(self) -> bool:
        """0.9.0: the server inserts a turn itself from ``user_message`` + ``parent_id``;
        a turn the client wrote there has its answer stored again with no parent."""
        return self.version_tuple >= (0, 9, 0)

    @property
    def answer_parent_from_request(self) -> bool:
        """0.6.41: the server stores the answer's ``parentId`` from the completion's
        ``parent_id`` (null when absent), over what the client wrote."""
        return self.version_tuple >= (0, 6, 41)

    @property
    def marks_answers_done(self) -> bool:
        """0.8.11: the server stores ``done: true`` on a finished answer; before, it left
        that to the web UI, so we must finalise."""
        return self.version_tuple >= (0, 8, 11)

    @property
    def stops_by_chat(self) -> bool:
        """0.9.0: ``POST /api/tasks/chat/{id}/stop``; before, each task is stopped."""
        return self.version_tuple >= (0, 9, 0)

    @property
    def stop_closes_open_answers(self) -> bool:
        """0.11.4: ``POST /api/tasks/chat/{id}/stop`` with no task running marks the
        chat's open answers ``done``, one message at a time; 0.9.0 does not. (Read from
        0.9.0 and 0.11.4; releases between are taken not to.)"""
        return self.version_tuple >= (0, 11, 4)

    @property
    def patches_chat_params(self) -> bool:
        """0.12.4: ``PATCH /api/v1/chats/{id}/params`` changes ``params`` alone; before,
        only the whole-chat ``POST /api/v1/chats/{id}`` (a top-level patch) could."""
        return self.version_tuple >= (0, 12, 4)

    @property
    def polls_show_progress(self) -> bool:
        """0.11.1: a chat read while its answer is written holds the text so far;
        before, polling sees the answer only when it is complete."""
        return self.version_tuple >= (0, 11, 1)

    @property
    def checks_folder_ids(self) -> bool:
        """0.11.4: filing a chat into a deleted folder, or creating one there, is refused
        (404); 0.9.0 accepts the stale id and hides the chat everywhere. (Read from
        0.9.0 and 0.11.4; releases between are taken not to check.)"""
        return self.version_tuple >= (0, 11, 4)

    @property
    def creates_chats_in_folders(self) -> bool:
        """0.6.41: ``POST /api/v1/chats/new`` keeps a ``folder_id`` (0.6.15 drops it), and
        from 0.9.0 so does the completion that creates the chat. Neither checks the id
        before 0.11.4: a stale one hides the chat (``checks_folder_ids``)."""
        return self.version_tuple >= (0, 6, 41)

    @property
    def lists_feedback_pages(self) -> bool:
        """0.6.41: every rating is listed by ``feedbacks/list`` in pages (Admin →
        Evaluations); ``feedbacks/all`` is gone by 0.11."""
        return self.version_tuple >= (0, 6, 41)

    @property
    def turn_flow(self) -> str:
        """How a turn gets into the chat on this server, for people (``check``)."""
        if self.server_managed_turns:
            return "server-managed turns (user_message + parent_id; 0.9.0 and later)"
        if self.answer_parent_from_request:
            return "client-written history, completion names the question (0.6.41 to 0.8.x)"
        return "client-written history (0.6.15 to 0.6.40)"


@dataclass(frozen=True, repr=False)
class Credentials:
    token: str | None = None  # API key (sk-…) or JWT
    email: str | None = None
    password: str | None = None

    @property
    def mode(self) -> AuthMode:
        if self.email and self.password:
            return "jwt"
        return "api_key" if (self.token or "").startswith("sk-") else "jwt"

    @property
    def can_sign_in(self) -> bool:
        return bool(self.email and self.password)

    @property
    def pasted_jwt(self) -> bool:
        """A JWT given as is: nothing can renew it when it expires."""
        return self.mode == "jwt" and not self.can_sign_in

    def __repr__(self) -> str:
        # Logs and tracebacks show which credentials are set, never their values.
        token = "set" if self.token else "unset"
        password = "set" if self.password else "unset"
        return (
            f"Credentials(mode={self.mode!r}, email={self.email!r}, "
            f"token={token}, password={password})"
        )

    __str__ = __repr__


class OpenWebUIClient:
    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = credentials
        self._token = credentials.token
        self._http = http or httpx.AsyncClient(
            timeout=timeout, limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY)
        )
        self._retries = retries
        self._backoff = backoff
        self._pause = sleep  # injectable, so tests see the waits without waiting
        self._clock = clock  # wall clock, for Retry-After dates
        self._signin_lock = asyncio.Lock()
        # Bumped by every sign-in: a 401 to a request sent with an older token is
        # answered by retrying with the current one, not by signing in again.
        self._generation = 0
        self.requests_sent = 0  # counted for the benchmark and tests
        self.signins = 0  # counted for tests: renewal is single flight
        self.server: ServerInfo | None = None

    def __repr__(self) -> str:
        return f"OpenWebUIClient({self.base_url!r}, auth={self.auth_mode})"

    __str__ = __repr__

    @property
    def auth_mode(self) -> AuthMode:
        return self._credentials.mode

    @property
    def jwt(self) -> str | None:
        return self._token if self.auth_mode == "jwt" else None

    @property
    def can_renew_jwt(self) -> bool:
        return self._credentials.can_sign_in

    def current_jwt(self) -> str | None:
        """The JWT requests use right now (None with an API key)."""
        return self.jwt

    async def renew_jwt(self, stale: str | None = None) -> str:
        """A JWT newer than ``stale``: signs in again unless another caller already
        did (single flight). ``AuthRejected`` with the fix when it cannot renew."""
        generation = self._generation
        if stale is not None and self._token != stale:
            current = self._token
        else:
            await self._renew(generation)
            current = self._token
        if current is None:
            raise AuthRejected("no Open WebUI credentials configured")
        return current

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- connection ---------------------------------------------------------

    async def connect(self) -> ServerInfo:
        """Reach the server, sign in if configured, and learn its version."""
        data = await self.request("GET", "/api/version", auth=False)
        self.server = ServerInfo(version=str(data.get("version", "0")))
        if not self.server.supported:
            oldest = ".".join(map(str, OLDEST_SUPPORTED))
            raise ReleaseUnsupported(
                f"Open WebUI {self.server.version} is older than {oldest}, the oldest release "
                "owui-bridge works with; upgrade Open WebUI"
            )
        if self._credentials.email and self._credentials.password and self._token is None:
            await self._sign_in()
        if self._token is None:
            raise AuthRejected("no Open WebUI credentials configured")
        if self._credentials.pasted_jwt and jwt_expired(self._token):
            # Every request would be refused: say so now, with the fix.
            raise AuthRejected(self.expired_jwt_message())
        return self.server

    async def reachable(self) -> bool:
        """Whether Open WebUI answers right now (for readiness): one try, no retries,
        not counted in ``requests_sent``."""
        try:
            response = await self._http.get(
                self.base_url + "/api/version", timeout=_REACHABLE_TIMEOUT
            )
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def _sign_in(self) -> None:
        async with self._signin_lock:
            await self._sign_in_locked()

    async def _sign_in_locked(self) -> None:
        self.signins += 1
        try:
            data = await self.request(
                "POST",
                "/api/v1/auths/signin",
                json={"email": self._credentials.email, "password": self._credentials.password},
                auth=False,
            )
        except RequestRejected as exc:
            # Open WebUI answers a wrong email or password with 400, not 401.
            raise AuthRejected(str(exc)) from None
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthRejected("POST /api/v1/auths/signin: the answer has no token")
        keep_secret(token)
        self._token = token
        self._generation += 1
        log.info("signed in to Open WebUI as %s", self._credentials.email)

    async def _renew(self, generation: int) -> None:
        """Sign in again, once for every caller that saw token ``generation`` refused."""
        if not self._credentials.can_sign_in:
            raise AuthRejected(self.expired_jwt_message())
        async with self._signin_lock:
            if self._generation == generation:
                await self._sign_in_locked()

    def expired_jwt_message(self, refused: str | None = None) -> str:
        """What went wrong with a pasted JWT, and the exact fix."""
        expiry = jwt_expiry(self._token)
        where = f" ({refused})" if refused else ""
        if expiry is not None and expiry.timestamp() <= time.time():
            what = f"the Open WebUI JWT expired at {describe_expiry(expiry)}{where}"
        else:
            what = f"Open WebUI no longer accepts the JWT (expired or signed out){where}"
        return f"{what}; {JWT_FIX}"

    # -- endpoints ----------------------------------------------------------

    async def models(self) -> list[dict[str, Any]]:
        data = await self.request("GET", "/api/models")
        return list(data.get("data", [])) if isinstance(data, dict) else list(data)

    async def model(self, model_id: str) -> dict[str, Any]:
        """The model as the chat endpoint sees it; ``ModelUnknown`` if absent."""
        for model in await self.models():
            if model.get("id") == model_id:
                return model
        raise ModelUnknown(f"model {model_id!r} is not available in Open WebUI")

    async def model_info(self, model_id: str) -> dict[str, Any] | None:
        """Workspace settings of a custom model (None for a plain upstream model)."""
        try:
            data = await self.request("GET", "/api/v1/models/model", params={"id": model_id})
        except RequestRejected:
            return None
        return data if isinstance(data, dict) else None

    async def knowledge(self, knowledge_id: str) -> dict[str, Any]:
        data = await self.request("GET", f"/api/v1/knowledge/{knowledge_id}")
        if not isinstance(data, dict):
            raise RequestRejected(f"knowledge {knowledge_id!r} not found")
        return data

    async def get_chat(self, chat_id: str) -> dict[str, Any]:
        """The chat; ``ChatGone`` when it was deleted."""
        try:
            data = await self.request("GET", f"/api/v1/chats/{chat_id}")
        except RequestRejected as exc:
            # Every release answers a missing chat with 401 "could not find" (or 404).
            if exc.status in (401, 404):
                raise ChatGone(f"chat {chat_id} no longer exists") from exc
            raise
        if not isinstance(data, dict):
            raise ChatGone(f"chat {chat_id} no longer exists")
        return data

    async def create_chat(
        self, chat: Mapping[str, Any], folder_id: str | None = None
    ) -> dict[str, Any]:
        """A new chat; in ``folder_id`` where the server keeps it (``creates_chats_in_folders``)."""
        body: dict[str, Any] = {"chat": chat}
        if folder_id is not None:
            body["folder_id"] = folder_id
        data = await self.request("POST", "/api/v1/chats/new", json=body)
        return dict(data)

    async def update_chat(self, chat_id: str, chat: Mapping[str, Any]) -> dict[str, Any]:
        data = await self.request("POST", f"/api/v1/chats/{chat_id}", json={"chat": chat})
        return dict(data)

    async def update_chat_params(self, chat_id: str, params: Mapping[str, Any]) -> None:
        """Set the chat's ``params`` (its system prompt), leaving everything else as the
        server has it."""
        if self.server is not None and self.server.patches_chat_params:
            await self.request("PATCH", f"/api/v1/chats/{chat_id}/params", json=dict(params))
            return
        # Only the key sent: the server merges top-level keys into the stored chat.
        await self.update_chat(chat_id, {"params": dict(params)})

    async def start_completion(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        # Not retried on 5xx: a completion that reached the server may be running.
        data = await self.request("POST", "/api/chat/completions", json=payload, retry=False)
        if isinstance(data, dict) and data.get("status") is False:
            raise RequestRejected(str(data.get("error") or data.get("detail") or data)[:300])
        return data if isinstance(data, dict) else {}

    async def running_tasks(self, chat_id: str) -> list[str]:
        data = await self.request("GET", f"/api/tasks/chat/{chat_id}")
        return [str(t) for t in (data or {}).get("task_ids", [])]

    async def stop_chat_tasks(self, chat_id: str) -> None:
        if self.server is not None and self.server.stops_by_chat:
            await self.request("POST", f"/api/tasks/chat/{chat_id}/stop", json={})
            return
        # No per-chat stop before 0.9: stop each running task.
        for task_id in await self.running_tasks(chat_id):
            await self.request("POST", f"/api/tasks/stop/{task_id}", json={})

    async def content(self, path: str, max_bytes: int) -> tuple[bytes, str]:
        """The raw body of ``path`` (a file's content) and its content type; raises
        ``ValueError`` past ``max_bytes``. One attempt: a caller shows a note instead."""
        token = self._token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with self._http.stream("GET", self.base_url + path, headers=headers) as response:
                if response.status_code >= 400:
                    await response.aread()
                    self._result("GET", path, response)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise ValueError(f"{path}: larger than {max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks), response.headers.get("content-type", "")
        except httpx.TransportError as exc:
            raise OpenWebUIUnavailable(f"GET {path}: {type(exc).__name__}") from None

    # -- transport ----------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        auth: bool = True,
        retry: bool = True,
        files: Callable[[], Any] | None = None,  # multipart parts, made afresh per attempt
        raw: bool = False,  # the answer's bytes, not JSON
    ) -> Any:
        attempt = 0
        auth_retries = 0
        renewed = False
        while True:
            token, generation = self._token, self._generation
            headers = {"Authorization": f"Bearer {token}"} if auth and token else {}
            try:
                self.requests_sent += 1
                response = await self._http.request(
                    method,
                    self.base_url + path,
                    json=json,
                    params=params,
                    headers=headers,
                    files=files() if files is not None else None,
                )
            except httpx.TransportError as exc:
                metrics.OPENWEBUI_REQUESTS.labels(method, "unreachable").inc()
                # Connect failures never reached the server: always safe to retry.
                safe = retry or isinstance(exc, httpx.ConnectError)
                if safe and attempt < self._retries:
                    metrics.OPENWEBUI_RETRIES.labels("unreachable").inc()
                    attempt += 1
                    await self._sleep(attempt)
                    continue
                raise OpenWebUIUnavailable(
                    f"{method} {path}: {type(exc).__name__} contacting Open WebUI"
                ) from None
            status = response.status_code
            metrics.OPENWEBUI_REQUESTS.labels(method, metrics.status_outcome(status)).inc()
            if status in _RETRY_STATUS and (retry or status == 429) and attempt < self._retries:
                metrics.OPENWEBUI_RETRIES.labels(metrics.status_outcome(status)).inc()
                attempt += 1
                await self._sleep(attempt, response.headers.get("retry-after"))
                continue
            if (
                status == 401
                and auth
                and token
                and auth_retries < _MAX_AUTH_RETRIES
                and not _not_found(_detail(response))  # a missing chat, not a sign-in
            ):
                auth_retries += 1
                if generation != self._generation:
                    continue  # renewed while this request was under way: just retry
                if self._credentials.pasted_jwt:
                    refused = f"{method} {path} answered 401"
                    raise AuthRejected(self.expired_jwt_message(refused))
                if self._credentials.can_sign_in and not renewed:
                    # An expired sign-in: renew once, together with any concurrent 401s.
                    renewed = True
                    await self._renew(generation)
                    continue
            return (
                response.content if raw and status < 400 else self._result(method, path, response)
            )

    async def _sleep(self, attempt: int, retry_after: str | None = None) -> None:
        asked = retry_after_seconds(retry_after, self._clock())
        if asked is not None:
            await self._pause(min(asked, _MAX_RETRY_AFTER))
            return
        await self._pause(self._backoff * (2 ** (attempt - 1)) * (0.5 + random.random()))

    @staticmethod
    def _result(method: str, path: str, response: httpx.Response) -> Any:
        status = response.status_code
        if status < 400:
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise OpenWebUIUnavailable(f"{method} {path}: answer is not JSON") from None
        detail = _detail(response)
        where = f"{method} {path}: {status} {detail}"
        error: BridgeError
        if status in (401, 403) and not _not_found(detail):
            error = AuthRejected(where)
        elif "model not found" in detail.lower() or "model_not_found" in detail.lower():
            error = ModelUnknown(where)
        elif status >= 500:
            error = OpenWebUIUnavailable(where)
        else:
            error = RequestRejected(where)
        error.status = status
        raise error


def _not_found(detail: str) -> bool:
    """Open WebUI answers a missing chat, folder or record with 401 "We could not find
    what you're looking for" on every release: not a sign-in problem."""
    lowered = detail.lower()
    return "not found" in lowered or "could not find" in lowered


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("error") or body.get("message") or body
        if isinstance(detail, dict):
            detail = detail.get("message") or detail
        return str(detail)[:300]
    return str(body)[:300]
