"""``owui-bridge check`` tries every configured token for real and never prints one:
the Slack app-level token (Socket Mode) against the local Slack server, and a
pasted Open WebUI JWT (when it expires; a clear failure with the fix once it has)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from adapters.slack.app import SCOPES
from tests.contract.test_live_renewal import short_lived_sign_ins
from tests.fakes.slack_server import FakeSlack
from tests.harness.bridge_process import bridge_env, run_to_end
from tests.harness.openwebui import RunningOpenWebUI

BOT_TOKEN = "xoxb-check-bot"
APP_TOKEN = "xapp-check-app"


def env_for(openwebui: RunningOpenWebUI, tmp: Path, **extra: str) -> dict[str, str]:
    return bridge_env(openwebui, tmp / "bridge.db") | {
        "OPENWEBUI_API_KEY": openwebui.api_key,
        **extra,
    }


def slack_env(fake: FakeSlack, app_token: str) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": app_token,
        "SLACK_API_URL": fake.api_url,
    }


async def check(env: dict[str, str]) -> tuple[int, str]:
    """``owui-bridge check`` as a process (async: the fake Slack runs in this loop)."""
    return await run_to_end(env, "check", timeout=120)


def lines(out: str, prefix: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(prefix)]


async def test_a_valid_app_token_says_socket_mode_can_connect(
    openwebui: RunningOpenWebUI, tmp_path: Path
) -> None:
    async with FakeSlack() as fake:
        fake.scopes = list(SCOPES)
        fake.valid_tokens = {BOT_TOKEN, APP_TOKEN}
        code, out = await check(env_for(openwebui, tmp_path, **slack_env(fake, APP_TOKEN)))

        assert code == 0, out
        assert "ok   slack app token: Socket Mode can connect" in out.splitlines()
        assert [c.params["token"] for c in fake.calls_of("apps.connections.open")] == [APP_TOKEN]
    assert APP_TOKEN not in out and BOT_TOKEN not in out


async def test_an_invalid_app_token_fails_without_showing_it(
    openwebui: RunningOpenWebUI, tmp_path: Path
) -> None:
    async with FakeSlack() as fake:
        fake.scopes = list(SCOPES)
        fake.valid_tokens = {BOT_TOKEN, "xapp-the-right-one"}
        code, out = await check(env_for(openwebui, tmp_path, **slack_env(fake, APP_TOKEN)))

        assert code == 1, out
        # Only the app token is wrong: the bot token and Open WebUI still pass.
        [failure] = lines(out, "FAIL")
        assert failure.startswith("FAIL slack app token: "), failure
        assert "invalid_auth" in failure
        assert lines(out, "ok   slack: bot")

        # A bot token pasted into SLACK_APP_TOKEN: the wrong kind of token.
        code, out2 = await check(env_for(openwebui, tmp_path, **slack_env(fake, BOT_TOKEN)))
        assert code == 1, out2
        [failure] = lines(out2, "FAIL")
        assert failure.startswith("FAIL slack app token: ") and "not_allowed_token_type" in failure
    for output in (out, out2):
        assert APP_TOKEN not in output and BOT_TOKEN not in output
        assert "Traceback" not in output


async def test_a_pasted_jwt_that_expired_fails_with_the_fix(
    openwebui: RunningOpenWebUI, tmp_path: Path
) -> None:
    with short_lived_sign_ins(openwebui, "1s"):
        user = openwebui.create_user("admin", name="expired")
    await asyncio.sleep(2.0)  # past its one second
    code, out = await check(env_for(openwebui, tmp_path, OPENWEBUI_API_KEY=user.jwt))

    assert code == 1, out
    [failure] = lines(out, "FAIL")
    assert failure.startswith("FAIL auth: "), failure
    assert "expired at" in failure
    assert "OPENWEBUI_EMAIL" in failure and "OPENWEBUI_PASSWORD" in failure
    assert user.jwt not in out
    assert "Traceback" not in out


async def test_a_pasted_jwt_says_when_it_stops_working(
    openwebui: RunningOpenWebUI, tmp_path: Path
) -> None:
    code, out = await check(env_for(openwebui, tmp_path, OPENWEBUI_API_KEY=openwebui.jwt))

    assert code == 0, out
    [line] = lines(out, "ok   jwt: ")
    # 0.6.x signs tokens without expiry by default; 0.12.x for four weeks.
    if openwebui.version.startswith("0.6."):
        assert "no expiry" in line, line
    else:
        assert re.search(r"expires at \d{4}-\d\d-\d\d .* \(in 2\d days\)", line), line
        assert "OPENWEBUI_EMAIL" in line
    assert openwebui.jwt not in out
