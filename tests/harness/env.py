"""The environment every process a test starts (Open WebUI servers, the bridge's own
commands) gets: only what a process needs to run, from an allow-list. A developer's
own settings (the bridge's, Open WebUI's ``DATABASE_URL``, ``OPENAI_API_BASE_URLS``,
``REDIS_URL``, vector store and S3 settings) and proxies never reach them, so the
suite cannot touch their services, and loopback is never proxied."""

from __future__ import annotations

import os

PASSED_THROUGH = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE",
        "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
    }
)  # fmt: skip
LOOPBACK = "127.0.0.1,localhost,::1"


def clean_env(**extra: str) -> dict[str, str]:
    """The allow-listed part of this process's environment, plus ``extra``."""
    env = {name: value for name, value in os.environ.items() if name in PASSED_THROUGH}
    env.update(NO_PROXY=LOOPBACK, no_proxy=LOOPBACK)
    env.update(extra)
    return env
