"""``GET /metrics`` as Prometheus scrapes it, after a real Slack conversation."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_slack import ALICE, CHANNEL, Harness, slack_bridge
from tests.harness.openwebui import RunningOpenWebUI

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(harness: Harness) -> tuple[Samples, str]:
    url = f"http://127.0.0.1:{harness.adapter.http_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)  # the Prometheus parser
        for s in family.samples
    }
    return samples, text


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_count_what_the_thread_saw(
    openwebui: RunningOpenWebUI, tmp_path: Path
) -> None:
    question = "How do metrics work?"
    async with slack_bridge(openwebui, tmp_path, "http") as harness:
        before, _ = await scrape(harness)
        harness.fake.rate_limit_next("chat.startStream", retry_after=0)  # waited out
        thread = await harness.say(CHANNEL, ALICE, f"<@UBOT> {question}")
        await harness.answers(CHANNEL, thread, 1)
        await harness.say(CHANNEL, ALICE, "And a second one?", thread_ts=thread)
        await harness.answers(CHANNEL, thread, 2)
        await harness.say(CHANNEL, ALICE, "<@UBOT> " + "x" * 40_000)  # too long: refused
        await harness.fake.wait_for(
            lambda: bool(harness.fake.ephemerals_to(ALICE)), what="a notice"
        )
        after, text = await scrape(harness)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("owui_bridge_turns_total", platform="slack", outcome="done") == 2
    assert grew("owui_bridge_time_to_first_text_seconds_count", platform="slack") == 2
    assert grew("owui_bridge_answer_seconds_count", platform="slack") == 2
    assert grew("owui_bridge_refusals_total", platform="slack", reason="question too long") == 1
    assert grew("owui_bridge_openwebui_requests_total", method="POST", outcome="ok") >= 2
    slack_ok = [
        name
        for (name, labels), count in after.items()
        if name == "owui_bridge_platform_calls_total"
        and ("platform", "slack") in labels
        and ("outcome", "ok") in labels
        and count > value(before, name, **dict(labels))
    ]
    assert slack_ok  # Slack's Web API calls are counted by method
    assert (
        grew(
            "owui_bridge_platform_rate_limits_total",
            platform="slack",
            method="chat.startStream",
        )
        == 1
    )
    # Nothing left waiting or being written (the gauges are back where they were).
    assert grew("owui_bridge_questions_queued") == 0
    assert grew("owui_bridge_answers_in_progress") == 0
    # No user text or ids in any label.
    assert not [w for w in (question, "second one", ALICE, thread) if w in text]
