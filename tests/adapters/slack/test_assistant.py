"""Assistant-thread titles and prompts as Slack shows them, and background chores."""

from __future__ import annotations

import asyncio
import logging

import pytest

from adapters.slack.assistant import prompts_payload, started_thread, title_for
from adapters.slack.chores import Chores


@pytest.mark.parametrize(
    ("question", "title"),
    [
        ("What changed?", "What changed?"),
        ("  two\n\nlines  ", "two lines"),
        ("Is A &lt; B &amp;&amp; C?", "Is A < B && C?"),  # read as a person wrote it
        ("word " * 20, "word word word word word word word word word word word…"),
        ("x" * 80, "x" * 59 + "…"),  # one long word is cut where it must be
    ],
)
def test_title_from_the_question(question: str, title: str) -> None:
    assert title_for(question) == title
    assert len(title_for(question)) <= 60


def test_prompts_payload() -> None:
    prompts = ["One", " ", "A rather long prompt that goes well past the forty chars", "3", "4"]
    payload = prompts_payload(prompts)
    assert [p["message"] for p in payload] == prompts[:1] + prompts[2:4]  # blanks dropped
    assert payload[1]["title"] == "A rather long prompt that goes well…"
    assert prompts_payload([]) == []


def test_started_thread() -> None:
    body = {"event": {"assistant_thread": {"channel_id": "D1", "thread_ts": "1.2"}}}
    assert started_thread(body) == ("D1", "1.2")
    assert started_thread({"event": {"assistant_thread": {"channel_id": "D1"}}}) is None
    assert started_thread({"event": "x"}) is None


async def test_chores_log_failures_and_finish_on_close(caplog: pytest.LogCaptureFixture) -> None:
    chores = Chores()
    done: list[str] = []

    async def slow() -> None:
        await asyncio.sleep(0.1)
        done.append("slow")

    async def broken() -> None:
        raise RuntimeError("boom")

    async def stuck() -> None:
        await asyncio.sleep(60)
        done.append("never")

    with caplog.at_level(logging.ERROR, logger="adapters.slack.chores"):
        chores.spawn(slow(), "slow chore")
        chores.spawn(broken(), "broken chore")
        chores.spawn(stuck(), "stuck chore")
        await chores.close(wait=0.5)
    assert done == ["slow"]
    assert "broken chore failed" in caplog.text and "boom" in caplog.text
