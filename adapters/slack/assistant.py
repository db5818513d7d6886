"""Slack's assistant threads (the app's "Agents & AI Apps" split view): suggested
prompts when a person opens one, and a title from its first question.

Both are niceties: they need the ``assistant:write`` scope, run in the
background, and a refusal is logged, never raised. The threads opened while the
process runs are remembered: only there does an answer show "is thinking…"
(``assistant.threads.setStatus``), which Slack refuses anywhere else.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.chores import Chores
from adapters.slack.facts import FAILED, describe
from adapters.slack.text import decode_inbound

log = logging.getLogger(__name__)

SCOPE = "assistant:write"
MAX_PROMPTS = 4  # Slack shows up to four suggested prompts
TITLE_LENGTH = 60  # characters of the question a thread's title keeps
PROMPT_TITLE_LENGTH = 40  # a prompt's label; the whole prompt is what gets sent
REMEMBERED = 10_000  # assistant threads remembered (the newest)


def started_thread(body: dict[str, Any]) -> tuple[str, str] | None:
    """(DM channel, thread ts) of an ``assistant_thread_started`` event."""
    event = body.get("event")
    thread = event.get("assistant_thread") if isinstance(event, dict) else None
    if not isinstance(thread, dict):
        return None
    channel, ts = thread.get("channel_id"), thread.get("thread_ts")
    return (str(channel), str(ts)) if channel and ts else None


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, cut at a word within ``limit`` characters (with "…")."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + "…"


def title_for(question: str) -> str:
    return shorten(decode_inbound(question, {}), TITLE_LENGTH)


def prompts_payload(prompts: Sequence[str]) -> list[dict[str, str]]:
    return [
        {"title": shorten(p, PROMPT_TITLE_LENGTH), "message": p}
        for p in prompts[:MAX_PROMPTS]
        if p.strip()
    ]


class Assistant:
    def __init__(self, client: AsyncWebClient, chores: Chores) -> None:
        self._client = client
        self._chores = chores
        self.enabled = True  # off when the token is known to lack ``SCOPE``
        self._threads: OrderedDict[tuple[str, str], None] = OrderedDict()

    def opened(self, channel: str, thread_ts: str) -> None:
        """A person opened an assistant thread (``assistant_thread_started``)."""
        self._threads[(channel, thread_ts)] = None
        self._threads.move_to_end((channel, thread_ts))
        while len(self._threads) > REMEMBERED:
            self._threads.popitem(last=False)

    def is_thread(self, channel: str, thread_ts: str) -> bool:
        """Whether ``thread_ts`` is an assistant thread (one opened since the start)."""
        return self.enabled and (channel, thread_ts) in self._threads

    def suggest(self, channel: str, thread_ts: str, prompts: Sequence[str]) -> None:
        payload = prompts_payload(prompts)
        if self.enabled and payload:
            self._spawn(
                "assistant.threads.setSuggestedPrompts",
                channel_id=channel,
                thread_ts=thread_ts,
                prompts=payload,
            )

    def title(self, channel: str, thread_ts: str, question: str) -> None:
        title = title_for(question)
        if self.enabled and title:
            self._spawn(
                "assistant.threads.setTitle", channel_id=channel, thread_ts=thread_ts, title=title
            )

    def _spawn(self, method: str, **params: Any) -> None:
        self._chores.spawn(self._call(method, params), method)

    async def _call(self, method: str, params: dict[str, Any]) -> None:
        try:
            await self._client.api_call(method, json=params)
        except FAILED as exc:
            # Slack says no outside assistant threads, or without the scope: harmless.
            log.info("%s in %s: %s", method, params.get("channel_id"), describe(exc))
