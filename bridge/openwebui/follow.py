"""Follow one answer to its end, by live events or by polling the chat.

Both paths report the whole text so far to ``on_text`` and end when the answer
is complete, failed, or past its deadline. The text the thread finally shows
is always the stored one (fetched afterwards), so the two paths cannot differ
in the end result; they differ only in how soon increments arrive.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.errors import AnswerFailed, AnswerTimedOut
from bridge.openwebui import tree
from bridge.openwebui.client import OpenWebUIClient
from bridge.openwebui.live import Event

OnText = Callable[[str], Awaitable[None]]

# With live events, look at the stored chat when nothing arrived for this long:
# a dropped socket must not leave a turn waiting for an event that never comes.
EVENT_SILENCE_CHECK = 5.0


@dataclass
class AnswerState:
    text: str = ""
    done: bool = False
    error: str | None = None
    increments: int = field(default=0)
    # Files the live events announced (0.6.15 stores generated images nowhere else).
    files: list[dict[str, Any]] = field(default_factory=list)

    def apply_event(self, event: Event) -> None:
        kind = event.get("type")
        raw = event.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if kind in ("chat:completion", "response:completion"):
            if kind == "chat:completion" and isinstance(data.get("content"), str):
                self.text = data["content"]
            elif isinstance(data.get("output"), list):
                self.text = tree.output_text(data["output"]) or self.text
            elif isinstance(data.get("delta"), str) and str(data.get("type", "")).endswith(
                "output_text.delta"
            ):
                self.text += data["delta"]
            if data.get("error"):
                self.error = _error_text(data["error"])
                self.done = True
            if data.get("done") is True:
                self.done = True
        elif kind in ("files", "chat:message:files"):
            self.files.extend(f for f in data.get("files") or [] if isinstance(f, dict))
        elif kind == "chat:message:error":
            self.error = _error_text(data.get("error")) or "error"
            self.done = True
        elif kind == "chat:tasks:cancel":
            self.error = self.error or "the answer was cancelled"
            self.done = True


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("content") or error.get("message") or error)
    return str(error)


class AnswerFollower:
    def __init__(
        self,
        client: OpenWebUIClient,
        *,
        marks_done: bool,
        poll_interval: float,
        timeout: float,
    ) -> None:
        self._client = client
        self._marks_done = marks_done
        self._poll_interval = poll_interval
        self._timeout = timeout

    async def follow(
        self,
        chat_id: str,
        message_id: str,
        on_text: OnText,
        events: asyncio.Queue[Event] | None = None,
    ) -> AnswerState:
        deadline = time.monotonic() + self._timeout
        state = AnswerState()
        try:
            async with asyncio.timeout_at(_loop_time(deadline)):
                if events is not None:
                    await self._by_events(chat_id, message_id, state, on_text, events)
                else:
                    await self._by_polling(chat_id, message_id, state, on_text)
        except TimeoutError:
            await self.stop(chat_id)
            raise AnswerTimedOut(
                f"answer {message_id} not done after {self._timeout:.0f}s"
            ) from None
        if state.error:
            raise AnswerFailed(f"answer {message_id} failed: {state.error[:300]}")
        return state

    async def _by_events(
        self,
        chat_id: str,
        message_id: str,
        state: AnswerState,
        on_text: OnText,
        events: asyncio.Queue[Event],
    ) -> None:
        while not state.done:
            try:
                # A timer, not wait_for: no task per event (an answer is thousands).
                async with asyncio.timeout(EVENT_SILENCE_CHECK):
                    event = await events.get()
            except TimeoutError:
                await self._poll_once(chat_id, message_id, state, on_text)
                continue
            before = state.text
            state.apply_event(event)
            if state.text != before and state.text:
                state.increments += 1
                await on_text(state.text)

    async def _by_polling(
        self, chat_id: str, message_id: str, state: AnswerState, on_text: OnText
    ) -> None:
        while not state.done:
            await self._poll_once(chat_id, message_id, state, on_text)
            if not state.done:
                await asyncio.sleep(self._poll_interval)

    async def _poll_once(
        self, chat_id: str, message_id: str, state: AnswerState, on_text: OnText
    ) -> None:
        chat = await self._client.get_chat(chat_id)
        message = tree.message_in(chat, message_id)
        if message is None:
            return
        text = tree.message_text(message)
        unchanged = text == state.text
        if text and not unchanged:
            state.text = text
            state.increments += 1
            await on_text(text)
        if message.get("error"):
            state.error = _error_text(message["error"])
            state.done = True
        elif message.get("done") is True:
            state.done = True
        elif not self._marks_done and unchanged:
            # Before 0.8.11 the server never writes done: the answer is over when no
            # task runs for the chat (the task exists before the start returns), empty
            # answers included.
            state.done = not await self._client.running_tasks(chat_id)

    async def stop(self, chat_id: str) -> None:
        """Stop the chat's running answer in Open WebUI (best effort)."""
        try:
            await asyncio.wait_for(self._client.stop_chat_tasks(chat_id), 10)
        except Exception:  # best effort: the user hears about the timeout
            pass


def _loop_time(deadline: float) -> float:
    loop = asyncio.get_running_loop()
    return loop.time() + (deadline - time.monotonic())
