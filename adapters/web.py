"""The process's one small HTTP server: liveness, readiness, and platform routes.

* ``GET /healthz``: 200 ``{"ok": true}`` while the process runs (liveness).
* ``GET /readyz``: 200 ``{"ready": true, "checks": {...}}`` when every registered
  check passes right now, else 503 with the same body and ``"failed": [...]``.
  A check is ``async () -> bool`` under a name (Open WebUI, each platform); each
  runs with a short timeout and its result is kept for a few seconds, so a
  load balancer polling every second does not turn into a stream of requests.
* ``GET /metrics``: Prometheus text format (``bridge.metrics``).
* Platform routes (Slack's ``POST /slack/events`` in HTTP mode) are added with
  ``add_route`` before ``start``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import prometheus_client
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[bool]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CHECK_TIMEOUT = 3.0
CHECK_CACHE = 5.0


class WebServer:
    def __init__(
        self, *, check_timeout: float = CHECK_TIMEOUT, cache_seconds: float = CHECK_CACHE
    ) -> None:
        self._check_timeout = check_timeout
        self._cache_seconds = cache_seconds
        self._checks: dict[str, ReadinessCheck] = {}
        self._results: dict[str, tuple[float, bool]] = {}
        self._app = web.Application()
        self._app.router.add_get("/healthz", self._healthz)
        self._app.router.add_get("/readyz", self._readyz)
        self._app.router.add_get("/metrics", self._metrics)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None  # the bound port once started (useful with port 0)

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        self._checks[name] = check
        self._results.pop(name, None)

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        if self._runner is not None:
            raise RuntimeError(f"add {method} {path} before the web server starts")
        self._app.router.add_route(method, path, handler)

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.port = self._runner.addresses[0][1]
        log.info("HTTP on %s:%s (/healthz, /readyz, /metrics)", host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def readiness(self) -> dict[str, bool]:
        """Each check's result now (or from the last few seconds)."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._result(name) for name in names))
        return dict(zip(names, results, strict=True))

    async def _result(self, name: str) -> bool:
        cached = self._results.get(name)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        try:
            passed = bool(await asyncio.wait_for(self._checks[name](), self._check_timeout))
        except Exception as exc:
            log.info("readiness check %s failed: %s", name, type(exc).__name__)
            passed = False
        self._results[name] = (time.monotonic(), passed)
        return passed

    async def _metrics(self, _: web.Request) -> web.Response:
        body = prometheus_client.generate_latest(prometheus_client.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _readyz(self, _: web.Request) -> web.Response:
        checks = await self.readiness()
        failed = [name for name, passed in checks.items() if not passed]
        if failed:
            return web.json_response(
                {"ready": False, "checks": checks, "failed": failed}, status=503
            )
        return web.json_response({"ready": True, "checks": checks})
