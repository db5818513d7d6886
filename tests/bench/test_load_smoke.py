"""``python -m bench.load`` still runs: ten answers through one bridge process (and
through two on one PostgreSQL) against the Open WebUI stand-in and the fake Slack
and Discord (no figure is judged here; speed is the benchmark's business)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import load
from tests.harness.postgres import find_binaries


async def test_ten_answers_arrive_whole_and_every_figure_is_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--concurrency", "10", "--repeats", "1", "--tokens", "30", "--rate", "30"]
    runs = await load.main([*argv, "--log", str(tmp_path / "bridge.log")])

    (run,) = runs[load.Setup("sqlite", 1), 10]
    assert run.complete == 10  # every answer whole in its Slack or Discord thread
    assert run.answers == {"slack": 5, "discord": 5}
    assert not run.unknown_routes  # the stand-in serves every request the bridge made
    assert {p: len(v) for p, v in run.first_text_ms.items()} == {"slack": 5, "discord": 5}
    assert run.tokens == 300 and run.cpu > 0 and run.rss_peak_mb > 0 and run.lag_ms
    printed = capsys.readouterr().out
    assert "nproc" in printed and "| CPU s per 1,000 tokens" in printed


@pytest.mark.skipif(find_binaries() is None, reason="PostgreSQL is not installed")
async def test_two_replicas_on_postgres_share_the_answers_each_once(tmp_path: Path) -> None:
    argv = ["--concurrency", "10", "--repeats", "1", "--tokens", "30", "--rate", "30"]
    argv += ["--database", "postgres", "--replicas", "2"]
    runs = await load.main([*argv, "--log", str(tmp_path / "bridge.log")])

    (run,) = runs[load.Setup("postgres", 2), 10]
    assert run.complete == 10  # every answer whole, once, in its thread
    assert run.answers_started == 10  # no question answered twice
    assert len(run.turns) == 2 and sum(run.turns) == 10 and min(run.turns) > 0
    assert run.cpu > 0 and run.rss_sum_mb > run.rss_peak_mb > 0
