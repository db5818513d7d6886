"""``owui-bridge run`` and ``owui-bridge check`` as a user starts them, with Discord
pointed at the local Discord-compatible server (the CLI runs as a real process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.discord_server import (
    APP_ID,
    BOT_USER_ID,
    DIRECT_MESSAGE_REACTIONS,
    DIRECT_MESSAGES,
    GATEWAY_MESSAGE_CONTENT_LIMITED,
    GUILD_MESSAGE_REACTIONS,
    GUILD_MESSAGES,
    GUILDS,
    MESSAGE_CONTENT,
    FakeDiscord,
)
from tests.harness.bridge_process import BridgeProcess, bridge_env, run_to_end
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI

TOKEN = "cli-discord-token"
INVITE = (
    f"https://discord.com/oauth2/authorize?client_id={APP_ID}"
    "&scope=bot%20applications.commands&permissions=309237746688"
)

# What the operator reads when the intent is off, written out here (not imported).
INTENT_MISSING = (
    "the Message Content intent is not enabled for this bot; enable it in the Discord "
    "Developer Portal → your application → Bot → Privileged Gateway Intents → "
    "Message Content Intent"
)


def base_env(openwebui: RunningOpenWebUI, fake: FakeDiscord, tmp: Path) -> dict[str, str]:
    return bridge_env(openwebui, tmp / "bridge.db") | {
        "OPENWEBUI_API_KEY": openwebui.jwt,
        "DISCORD_BOT_TOKEN": TOKEN,
        "DISCORD_API_URL": fake.api_url,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
    }


async def test_run_serves_discord_until_stopped(
    openwebui: RunningOpenWebUI, tmp_path: Path
) -> None:
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Lab")
        general = fake.add_channel(guild, "general")
        ada = fake.add_user(name="ada", global_name="Ada")
        fake.add_member(guild, ada)
        env = base_env(openwebui, fake, tmp_path)
        bridge = await BridgeProcess(tmp_path / "bridge.log").start(env)
        try:
            ready = await bridge.wait_ready("/readyz", 200, timeout=30)
            assert ready.status_code == 200, ready.text
            checks = {"openwebui": True, "database": True, "discord": True}
            assert ready.json() == {"ready": True, "checks": checks}
            [identify] = fake.identifies
            wanted = (
                GUILDS
                | GUILD_MESSAGES
                | DIRECT_MESSAGES
                | MESSAGE_CONTENT
                | GUILD_MESSAGE_REACTIONS
                | DIRECT_MESSAGE_REACTIONS
            )
            assert identify["intents"] & wanted == wanted
            assert [c["name"] for c in fake.commands] == ["new", "stop"]  # both registered

            thread = fake.user_says(general, ada, f"<@{BOT_USER_ID}> via run").id
            answer = expected_reply("Ada: via run")
            await fake.wait_for(
                lambda: [m.content for m in fake.bot_messages(thread)] == [answer],
                timeout=60,
                what="the answer in the thread",
            )
        finally:
            code = await bridge.stop()
        out = bridge.output()
        assert code == 0, out
        assert TOKEN not in out
        assert [m.content for m in fake.bot_messages(thread)] == [answer]


@pytest.mark.parametrize("where", ["application-flags", "gateway-4014"])
async def test_run_without_the_message_content_intent_is_one_clear_line(
    openwebui: RunningOpenWebUI, tmp_path: Path, where: str
) -> None:
    async with FakeDiscord() as fake:
        fake.add_channel(fake.add_guild("Lab"), "general")
        fake.message_content_allowed = False
        if where == "gateway-4014":
            # The application says the intent is on; the gateway refuses it anyway.
            fake.application_flags = GATEWAY_MESSAGE_CONTENT_LIMITED
        code, out = await run_to_end(base_env(openwebui, fake, tmp_path), "run")

        assert code != 0, out
        assert "Traceback" not in out, out
        about_intent = [line for line in out.splitlines() if "Message Content" in line]
        assert about_intent == [f"owui-bridge: {INTENT_MISSING}"], out
        assert "Developer Portal" in about_intent[0]  # says where to enable it
        assert TOKEN not in out
        if where == "gateway-4014":
            assert fake.identifies  # it got as far as the gateway


async def test_check_prints_the_invite_url_and_the_intent(
    openwebui: RunningOpenWebUI, tmp_path: Path
) -> None:
    async with FakeDiscord() as fake:
        env = base_env(openwebui, fake, tmp_path)
        code, out = await run_to_end(env, "check")
        assert code == 0, out
        lines = out.splitlines()
        assert f"ok   discord: bot owui-bot ({BOT_USER_ID})" in lines
        assert f"ok   discord invite: {INVITE}" in lines
        assert "ok   discord intent: Message Content intent enabled" in lines

        fake.message_content_allowed = False
        code, out2 = await run_to_end(env, "check")
        assert code == 1, out2
        assert f"FAIL discord intent: {INTENT_MISSING}" in out2.splitlines()
        assert f"ok   discord invite: {INVITE}" in out2.splitlines()

        fake.valid_tokens = {"another-token"}
        code, out3 = await run_to_end(env, "check")
        assert code == 1, out3
        assert [line for line in out3.splitlines() if line.startswith("FAIL")] == [
            "FAIL discord: DISCORD_BOT_TOKEN was rejected by Discord (401)"
        ]
    for output in (out, out2, out3):
        assert TOKEN not in output
        assert "Traceback" not in output
