"""``python -m bench.load`` still runs: ten answers through one bridge process
against the Open WebUI stand-in and the fake Slack and Discord (no figure is
judged here; speed is the benchmark's business)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import load


async def test_ten_answers_arrive_whole_and_every_figure_is_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--concurrency", "10", "--repeats", "1", "--tokens", "30", "--rate", "30"]
    runs = await load.main([*argv, "--log", str(tmp_path / "bridge.log")])

    (run,) = runs[10]
    assert run.complete == 10  # every answer whole in its Slack or Discord thread
    assert run.answers == {"slack": 5, "discord": 5}
    assert not run.unknown_routes  # the stand-in serves every request the bridge made
    assert {p: len(v) for p, v in run.first_text_ms.items()} == {"slack": 5, "discord": 5}
    assert run.tokens == 300 and run.cpu > 0 and run.rss_peak_mb > 0 and run.lag_ms
    printed = capsys.readouterr().out
    assert "nproc" in printed and "| CPU s per 1,000 tokens" in printed
