"""``owui-bridge run`` and ``owui-bridge check`` as a user starts them, with Slack
pointed at the local Slack-compatible server (the CLI runs as a real process)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from adapters.slack.app import SCOPES
from tests.fakes.slack_server import BOT_USER_ID, FakeSlack
from tests.harness.bridge_process import BridgeProcess, bridge_env, run_to_end
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI

SECRET = "cli-signing-secret"


def base_env(openwebui: RunningOpenWebUI, fake: FakeSlack, tmp: Path) -> dict[str, str]:
    return bridge_env(openwebui, tmp / "bridge.db") | {
        "OPENWEBUI_API_KEY": openwebui.jwt,
        "SLACK_BOT_TOKEN": "xoxb-cli",
        "SLACK_API_URL": fake.api_url,
    }


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_run_serves_slack_until_stopped(
    openwebui: RunningOpenWebUI, tmp_path: Path, mode: str
) -> None:
    async with FakeSlack() as fake:
        fake.add_user("UALICE", "Alice")
        # Both modes serve /healthz and /readyz; HTTP mode also takes Slack's events there.
        env = base_env(openwebui, fake, tmp_path)
        if mode == "socket":
            env["SLACK_APP_TOKEN"] = "xapp-cli"
        else:
            env["SLACK_SIGNING_SECRET"] = SECRET
        bridge = await BridgeProcess(tmp_path / "bridge.log").start(env)
        try:
            ts, _message, mention = fake.user_says("C1", "UALICE", f"<@{BOT_USER_ID}> via run")
            assert mention is not None
            if mode == "socket":
                await fake.wait_for_socket(timeout=60)
                await fake.send_event(mention)
            else:
                await bridge.wait_ready("/healthz", 200)
                status, _ = await fake.post_event(f"{bridge.url}/slack/events", mention, SECRET)
                assert status == 200
            await fake.wait_for(
                lambda: any(m.stream_state == "stopped" for m in fake.bot_replies("C1", ts)),
                timeout=60, what="the answer",
            )  # fmt: skip
            assert [m.text for m in fake.bot_replies("C1", ts)] == [
                expected_reply("Alice: via run")
            ]
            async with httpx.AsyncClient() as client:
                ready = await client.get(f"{bridge.url}/readyz")
            assert ready.status_code == 200
            checks = {"openwebui": True, "database": True, "slack": True}
            assert ready.json() == {"ready": True, "checks": checks}
        finally:
            code = await bridge.stop(grace=30)
        out = bridge.output()
        assert code == 0, out
        assert "xoxb-cli" not in out and "xapp-cli" not in out


async def test_check_reports_slack_identity_and_missing_scopes(
    openwebui: RunningOpenWebUI, tmp_path: Path
) -> None:
    async with FakeSlack() as fake:
        fake.scopes = list(SCOPES)
        env = base_env(openwebui, fake, tmp_path) | {"SLACK_APP_TOKEN": "xapp-cli"}
        code, out = await run_to_end(env, "check")
        assert code == 0, out
        assert f"ok   slack: bot {BOT_USER_ID} in team T1" in out
        # User groups as roles need one more scope than the bot itself.
        code, out = await run_to_end(env | {"BRIDGE_ALLOWED_ROLES": "S0STAFF"}, "check")
        assert code == 1, out
        assert "FAIL slack scopes: BRIDGE_ALLOWED_ROLES needs usergroups:read" in out

        fake.scopes = [s for s in fake.scopes if s != "users:read"]
        code, out = await run_to_end(env, "check")
        assert code == 1, out
        assert "FAIL slack scopes: missing users:read" in out

        fake.valid_tokens = {"xoxb-other"}
        code, out = await run_to_end(env, "check")
        assert code == 1
        assert "FAIL slack: auth.test failed: invalid_auth" in out
        assert "xoxb-cli" not in out


async def test_run_without_a_platform_says_what_to_set(
    openwebui: RunningOpenWebUI, tmp_path: Path
) -> None:
    async with FakeSlack() as fake:
        env = base_env(openwebui, fake, tmp_path)
        del env["SLACK_BOT_TOKEN"]
        code, out = await run_to_end(env, "run")
        assert code == 2
        assert "SLACK_BOT_TOKEN" in out
        env |= {"SLACK_BOT_TOKEN": "xoxb-cli"}  # HTTP mode without a signing secret
        code, out = await run_to_end(env, "run")
        assert code == 2
        assert "SLACK_SIGNING_SECRET" in out
