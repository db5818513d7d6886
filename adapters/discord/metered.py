"""Discord REST calls counted for ``/metrics``: each call by route (discord.py's path
template, e.g. ``POST /channels/{channel_id}/messages``, never an id) and outcome,
and each 429 answer, including those discord.py waits out by itself."""

from __future__ import annotations

import logging
import re
from typing import Any

import discord

from bridge import metrics

PLATFORM = "discord"
_IDS = re.compile(r"/\d+")
_API = re.compile(r"^https?://[^/]+/api(/v\d+)?")


def meter(client: discord.Client) -> None:
    """Count ``client``'s REST calls (idempotent)."""
    http = client.http
    if getattr(http, "_owui_metered", False):
        return
    request = http.request

    async def counted(route: discord.http.Route, **kwargs: Any) -> Any:
        method = f"{route.method} {route.path}"
        try:
            result = await request(route, **kwargs)
        except discord.RateLimited:
            metrics.PLATFORM_CALLS.labels(PLATFORM, method, "rate_limited").inc()
            raise
        except discord.HTTPException as exc:
            outcome = "rate_limited" if exc.status == 429 else "error"
            metrics.PLATFORM_CALLS.labels(PLATFORM, method, outcome).inc()
            raise
        metrics.PLATFORM_CALLS.labels(PLATFORM, method, "ok").inc()
        return result

    http.request = counted  # type: ignore[method-assign]
    http._owui_metered = True  # type: ignore[attr-defined]
    logging.getLogger("discord.http").addFilter(_count_waits)


def _count_waits(record: logging.LogRecord) -> bool:
    """discord.py logs each 429 it waits out ("We are being rate limited. %s %s ...")."""
    if str(record.msg).startswith("We are being rate limited") and len(record.args or ()) >= 2:
        method, url = record.args[0], record.args[1]  # type: ignore[index]
        path = _IDS.sub("/{id}", _API.sub("", str(url)))
        metrics.PLATFORM_RATE_LIMITS.labels(PLATFORM, f"{method} {path}").inc()
    return True
