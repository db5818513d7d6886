"""Slack's request signing (v0), as Slack signs every request to an app's HTTP endpoint.

Computed here with hmac, not slack_sdk, so a test of the bridge's check does not rely on
the library that check is built on.
"""

from __future__ import annotations

import hashlib
import hmac
import time


def signature(body: bytes | str, timestamp: str, secret: str) -> str:
    """``v0=`` and the HMAC-SHA256 of ``v0:{timestamp}:{body}`` under the signing secret."""
    raw = body.encode() if isinstance(body, str) else body
    mac = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + raw, hashlib.sha256)
    return "v0=" + mac.hexdigest()


def signed_headers(
    body: bytes | str, secret: str, *, timestamp: int | None = None, age: int = 0
) -> dict[str, str]:
    """The headers of a signed JSON request: now (or ``timestamp``, unix seconds) less
    ``age`` seconds, and the signature over it and ``body``."""
    ts = str((int(time.time()) if timestamp is None else timestamp) - age)
    return {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature(body, ts, secret),
    }
