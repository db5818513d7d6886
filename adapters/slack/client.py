"""The bot's Web API clients: one HTTP session for the whole process, and retries that
never repeat a call which may already have made a message.

slack_sdk's ``AsyncWebClient`` without a ``session`` opens (and closes) an aiohttp
session, so a new TCP connection, for every call. ``SlackHttp`` holds one session that
every client of the adapter shares (Bolt's per-request clients copy it), closed when
the adapter closes.

slack_sdk's connection-error and server-error retry handlers repeat any call blindly.
For ``chat.postMessage`` and ``chat.startStream`` that makes a second copy of a message
whose first answer was lost; the reply looks for its message instead
(``adapters.slack.posts``). Every other call the bridge makes is safe to repeat.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.settings import SlackSettings
from bridge import metrics
from bridge.config import ConfigError

# Calls that create a message: repeated after a lost answer, they may make a second one.
# files.completeUploadExternal shares the files in a message.
CREATES_MESSAGES = frozenset(
    {"chat.postMessage", "chat.startStream", "files.completeUploadExternal"}
)
PLATFORM = "slack"
TIMEOUT = 30  # seconds per call that must land
QUICK_TIMEOUT = 10  # seconds per call tried once (intermediate updates, notices)


def _count_429s() -> aiohttp.TraceConfig:
    """Every 429 answer, also those a retry handler then waits out (``/metrics``)."""

    async def ended(
        _: aiohttp.ClientSession, __: Any, params: aiohttp.TraceRequestEndParams
    ) -> None:
        if params.response.status == 429:
            metrics.PLATFORM_RATE_LIMITS.labels(PLATFORM, method_of(str(params.url))).inc()

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(ended)
    return trace


def method_of(url: str) -> str:
    """``chat.postMessage`` of ``https://slack.com/api/chat.postMessage?…``."""
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


class _RepeatSafe:
    """Never repeats a call that creates a message: Slack may have made it already
    (``adapters.slack.posts`` looks for it instead)."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if method_of(request.url) in CREATES_MESSAGES:
            return False
        return bool(
            await super()._can_retry_async(  # type: ignore[misc]
                state=state, request=request, response=response, error=error
            )
        )


class RepeatSafeConnectionErrorRetryHandler(_RepeatSafe, AsyncConnectionErrorRetryHandler):
    """Retries connection errors, except for calls that create messages."""


class RepeatSafeServerErrorRetryHandler(_RepeatSafe, AsyncServerErrorRetryHandler):
    """Retries 500/503, except for calls that create messages."""


def retry_handlers() -> list[AsyncRetryHandler]:
    """Wait out 429s (Retry-After); retry server and connection errors where repeating
    is harmless."""
    return [
        AsyncRateLimitErrorRetryHandler(max_retry_count=5),
        RepeatSafeServerErrorRetryHandler(max_retry_count=2),
        RepeatSafeConnectionErrorRetryHandler(max_retry_count=2),
    ]


class SessionClient(AsyncWebClient):
    """An ``AsyncWebClient`` on the process's shared session (taken at its first call,
    inside the event loop), whose own ``timeout`` holds there too (slack_sdk applies it
    only to the sessions it creates itself)."""

    def __init__(self, *, http: SlackHttp | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._http = http

    async def _request(
        self, *, http_verb: str, api_url: str, req_args: dict[str, Any]
    ) -> dict[str, Any]:
        if self._http is not None and not self._http.closed:
            self.session = self._http.session
        if self.session is not None and not self.session.closed:
            req_args = {**req_args, "timeout": aiohttp.ClientTimeout(total=self.timeout)}
        method = method_of(api_url)
        try:
            result: dict[str, Any] = await super()._request(
                http_verb=http_verb, api_url=api_url, req_args=req_args
            )
        except Exception:
            metrics.PLATFORM_CALLS.labels(PLATFORM, method, "error").inc()
            raise
        data, status = result.get("data"), result.get("status_code")
        ok = isinstance(data, dict) and data.get("ok")
        outcome = "rate_limited" if status == 429 else "ok" if ok else "error"
        metrics.PLATFORM_CALLS.labels(PLATFORM, method, outcome).inc()
        return result


class SlackHttp:
    """The process's one HTTP session for Slack's Web API (opened on first use)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Bolt's per-request clients carry no timeout of their own: the session's.
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT), trace_configs=[_count_429s()]
            )
        return self._session

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Close the session; calls after this open a session of their own each."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None


def make_client(
    settings: SlackSettings, *, retries: bool = True, http: SlackHttp | None = None
) -> AsyncWebClient:
    """The bot's Web API client. ``retries``: wait out 429s (Retry-After), retry server
    and connection errors of calls that make no message; without: every call is tried
    once (intermediate updates). ``http``: the shared session (else one per call)."""
    if settings.bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN is not set")
    return SessionClient(
        token=settings.bot_token.get_secret_value(),
        base_url=settings.api_url,
        retry_handlers=retry_handlers() if retries else [],
        timeout=TIMEOUT if retries else QUICK_TIMEOUT,
        http=http,
    )
