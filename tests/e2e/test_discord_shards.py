"""Discord shards with ``owui-bridge run`` / ``check`` as real processes, the real core
and Open WebUI, against the local Discord server (which sends each shard's connection
its servers' events, and DMs to shard 0)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_discord_cli import TOKEN, base_env
from tests.fakes.discord_server import BOT_USER_ID, FakeDiscord
from tests.harness.bridge_process import BridgeProcess, run_to_end
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI


async def test_two_processes_each_answer_the_servers_of_their_shard_once(
    openwebui: RunningOpenWebUI, tmp_path: Path
) -> None:
    async with FakeDiscord() as fake:
        ada = fake.add_user(name="ada", global_name="Ada")
        channels = []
        for shard in (0, 1):
            guild = fake.add_guild(f"Shard {shard}", on_shard=(shard, 2))
            fake.add_member(guild, ada)
            channels.append(fake.add_channel(guild, "general"))
        dm = fake.add_dm(ada)
        bridges = []
        for shard in (0, 1):
            # Its own SQLite database and HTTP port: disjoint shards work on separate
            # databases too (test_discord_replicas has two on one PostgreSQL database).
            env = base_env(openwebui, fake, tmp_path / f"shard{shard}") | {
                "DISCORD_SHARD_COUNT": "2",
                "DISCORD_SHARD_IDS": str(shard),
            }
            (tmp_path / f"shard{shard}").mkdir()
            bridges.append(await BridgeProcess(tmp_path / f"shard{shard}.log").start(env))
        try:
            for shard, bridge in enumerate(bridges):
                ready = await bridge.wait_ready("/readyz", 200, timeout=30)
                assert ready.json()["checks"][f"discord shard {shard}"] is True
                assert f"discord shard {1 - shard}" not in ready.json()["checks"]
            questions = [
                fake.user_says(channel, ada, f"<@{BOT_USER_ID}> on shard {shard}").id
                for shard, channel in enumerate(channels)
            ]
            fake.user_says(dm, ada, "in a DM")
            wanted = {
                questions[0]: [expected_reply("Ada: on shard 0")],
                questions[1]: [expected_reply("Ada: on shard 1")],
                dm: [expected_reply("Ada: in a DM")],
            }

            def shown() -> dict[str, list[str]]:
                return {c: [m.content for m in fake.bot_messages(c)] for c in wanted}

            try:
                await fake.wait_for(lambda: shown() == wanted, timeout=90, what="three answers")
            except TimeoutError as late:
                raise AssertionError(f"shown: {shown()}") from late
        finally:
            codes = [await bridge.stop() for bridge in bridges]
        assert codes == [0, 0], [b.output() for b in bridges]
        assert shown() == wanted  # each once, nothing more came in the meantime
        assert all(TOKEN not in bridge.output() for bridge in bridges)


async def test_check_prints_the_recommended_shard_count(
    openwebui: RunningOpenWebUI, tmp_path: Path
) -> None:
    async with FakeDiscord() as fake:
        fake.recommended_shards = 2
        env = base_env(openwebui, fake, tmp_path)
        code, out = await run_to_end(env, "check")
        assert code == 0, out
        (line,) = [line for line in out.splitlines() if "discord shards" in line]
        assert line.startswith(
            "ok   discord shards: warning: below the recommendation, set "
            "DISCORD_SHARD_COUNT=2; Discord recommends 2 shards; "
            "DISCORD_SHARD_COUNT unset (one connection);"
        ), out
        code, out = await run_to_end(env | {"DISCORD_SHARD_COUNT": "2"}, "check")
        assert code == 0, out
        (line,) = [line for line in out.splitlines() if "discord shards" in line]
        assert line.startswith(
            "ok   discord shards: Discord recommends 2 shards; "
            "DISCORD_SHARD_COUNT=2, this process holds shards 0,1;"
        ), out


async def test_run_refuses_bad_shard_settings_in_one_line(
    openwebui: RunningOpenWebUI, tmp_path: Path
) -> None:
    async with FakeDiscord() as fake:
        env = base_env(openwebui, fake, tmp_path) | {
            "DISCORD_SHARD_COUNT": "2",
            "DISCORD_SHARD_IDS": "0,2",
        }
        code, out = await run_to_end(env, "run")
        assert code != 0, out
        assert "Traceback" not in out, out
        assert (
            "DISCORD_SHARD_IDS: Value error, with DISCORD_SHARD_COUNT=2 the shards are 0 to 1; "
            "not 2" in out
        ), out
        assert not fake.identifies  # refused before connecting
