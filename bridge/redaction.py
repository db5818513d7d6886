"""Secrets never reach a log line: every formatted record (message, arguments and
traceback) has each known secret replaced. Third-party libraries log at DEBUG
what they send; this is the net under all of them.

Secrets are registered when they become known: the configured ones at start,
a JWT when Open WebUI issues it.
"""

from __future__ import annotations

import logging
import re

MASK = "[redacted]"
MIN_LENGTH = 8  # shorter values would mask ordinary words; real secrets are long

_secrets: set[str] = set()
# A JWT not registered yet (e.g. in a response header logged before we read it).
_JWT = re.compile(r"eyJ[\w-]{5,}\.eyJ[\w-]{5,}\.[\w-]{10,}")


def keep_secret(value: str | None) -> None:
    """From now on ``value`` is masked in every log line."""
    if value and len(value) >= MIN_LENGTH:
        _secrets.add(value)


def redact(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return _JWT.sub(MASK, text)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
