"""Where log lines go and how they look: text for a terminal, or one JSON object
per line (``BRIDGE_LOG_FORMAT=json``) for a log pipeline. Either way every known
secret is masked (``bridge.redaction``) and each line written while a turn runs
names the turn, its thread, chat and platform (``bridge.logcontext``)."""

from __future__ import annotations

import logging
import sys

from pydantic import SecretStr
from pydantic_settings import BaseSettings
from pythonjsonlogger.json import JsonFormatter

from bridge.config import Settings
from bridge.logcontext import TurnFields
from bridge.redaction import RedactingFormatter, keep_secret, redact
from storage.postgres import password_of

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = ("asctime", "levelname", "name", "message", "turn", "thread", "chat_id", "platform")
# Request lines at INFO drown the conversation; warnings still show. httpcore at DEBUG
# prints response headers: Open WebUI's sign-in cookie is the JWT.
NOISY = ("httpx", "httpcore", "hpack", "socketio", "engineio", "aiosqlite")


class RedactingJsonFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(settings: Settings, *more: BaseSettings) -> None:
    for configured in (settings, *more):
        for value in dict(configured).values():
            if isinstance(value, SecretStr):
                keep_secret(value.get_secret_value())
    # A PostgreSQL URL's password (the URL itself is shown masked where it is shown).
    keep_secret(password_of(str(settings.bridge_database)))
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(TurnFields())
    handler.setFormatter(formatter(settings.bridge_log_format))
    logging.basicConfig(level=settings.bridge_log_level, handlers=[handler])
    level = logging.getLevelName(settings.bridge_log_level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, level))


def formatter(kind: str) -> logging.Formatter:
    if kind == "json":
        return RedactingJsonFormatter(
            " ".join(f"%({name})s" for name in JSON_FIELDS),
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
    return RedactingFormatter(TEXT)
