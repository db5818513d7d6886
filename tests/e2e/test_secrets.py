"""Secrets stay secret: ``owui-bridge run`` at DEBUG, Slack in HTTP mode with signed
(and badly signed) requests, a refused question and an answered one. Neither the
process's output nor the database files hold any configured secret, nor the
Open WebUI token the bridge signs in for."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from adapters.slack.app import SCOPES
from tests.e2e.test_slack_hostile import CHANNEL, http_bridge, post_raw
from tests.fakes.slack_server import BOT_USER_ID, FakeSlack
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI

# A JWT: base64url JSON header and payload ("eyJ" is '{"'), then a signature.
JWT = re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{16,}")


def database_bytes(database: Path) -> bytes:
    """The database and its write-ahead log and index, as they lie on disk."""
    files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
    return b"".join(path.read_bytes() for path in files if path.exists())


async def test_no_secret_in_logs_or_database(openwebui: RunningOpenWebUI, tmp_path: Path) -> None:
    run = uuid.uuid4().hex
    bot_token = f"xoxb-secret-bot-{run}"
    signing_secret = f"signing-secret-{run}"
    async with FakeSlack() as fake:
        fake.scopes = list(SCOPES)
        fake.add_user("UALICE", "Alice")
        fake.add_user("UDENIED", "Dan")
        env = {
            # Email and password: the bridge signs in and holds a JWT it was given.
            "OPENWEBUI_EMAIL": openwebui.admin_email,
            "OPENWEBUI_PASSWORD": openwebui.admin_password,
            "SLACK_BOT_TOKEN": bot_token,
            "SLACK_SIGNING_SECRET": signing_secret,
            "BRIDGE_LOG_LEVEL": "DEBUG",
            "BRIDGE_DENIED_USERS": "UDENIED",
        }
        async with http_bridge(openwebui, fake, tmp_path, env) as bridge:
            url = bridge.events_url
            # A refused question, a forged one, and an answered one.
            _, _, refused = fake.user_says(CHANNEL, "UDENIED", f"<@{BOT_USER_ID}> let me in")
            assert refused is not None
            assert (await fake.post_event(url, refused, signing_secret))[0] == 200
            await fake.wait_for(lambda: fake.ephemerals_to("UDENIED"), what="the notice")
            forged = json.dumps(refused).encode()
            assert await post_raw(url, forged, secret=f"{signing_secret}-guess") == 401
            ts, _, asked = fake.user_says(CHANNEL, "UALICE", f"<@{BOT_USER_ID}> hello {run}")
            assert asked is not None
            assert (await fake.post_event(url, asked, signing_secret))[0] == 200
            await fake.wait_for(
                lambda: (
                    [m.text for m in fake.bot_replies(CHANNEL, ts)]
                    == [expected_reply(f"Alice: hello {run}")]
                ),
                timeout=60,
                what="the answer",
            )
        output = bridge.output()
        stored = database_bytes(bridge.database)

    assert " DEBUG " in output  # DEBUG was on
    # The bridge did use the token: every Web API call carried it.
    assert {c.params["token"] for c in fake.calls} == {bot_token}
    secrets = {
        "SLACK_BOT_TOKEN": bot_token,
        "SLACK_SIGNING_SECRET": signing_secret,
        "OPENWEBUI_PASSWORD": openwebui.admin_password,
        "the admin's API key": openwebui.api_key,
        "the admin's JWT": openwebui.jwt,
    }
    leaks = [
        f"{name} in {where}"
        for name, secret in secrets.items()
        for where, text in (("the output", output.encode()), ("the database", stored))
        if secret.encode() in text
    ]
    leaks += [f"a JWT in the output: {m[:12]}…" for m in JWT.findall(output)]
    leaks += [f"a JWT in the database: {m[:12]!r}…" for m in JWT.findall(stored.decode("latin-1"))]
    assert leaks == [], "\n".join(leaks)
