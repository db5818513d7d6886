"""Delivery shows the newest text as the platform's pace allows, never queues stale
ones, always lands the final text after an update under way, and never raises
from ``fail``."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import pytest

from bridge.delivery import Delivery
from bridge.errors import PlatformFailed, ReplyStopped
from bridge.reply import Capabilities

pytestmark = pytest.mark.timeout(10)

INTERVAL = 0.1


@dataclass
class Handle:
    """A reply that logs its calls; ``shown`` is what the thread shows once the call
    returns (a slow update lands when it returns, like a real platform call)."""

    update_delay: float = 0.0
    refuse: int = 0  # the first N updates are over budget (False)
    stop: bool = False
    fail_error: Exception | None = None
    calls: list[tuple[float, str, str]] = field(default_factory=list)  # (when, call, text)
    shown: str = ""
    in_flight: int = 0

    def log(self, call: str, text: str) -> None:
        self.calls.append((time.monotonic(), call, text))

    def texts(self, call: str) -> list[str]:
        return [text for _, c, text in self.calls if c == call]

    async def start(self) -> None:
        self.log("start", "")

    async def update(self, text: str) -> bool:
        self.log("update", text)
        if self.stop:
            raise ReplyStopped("stop pressed")
        if self.refuse > 0:
            self.refuse -= 1
            return False
        self.in_flight += 1
        try:
            await asyncio.sleep(self.update_delay)
        finally:
            self.in_flight -= 1
        self.shown = text
        self.log("updated", text)
        return True

    async def finish(self, text: str) -> None:
        self.log("finish", text)
        self.log("finish while updating" if self.in_flight else "finish alone", text)
        self.shown = text

    async def fail(self, message: str) -> None:
        self.log("fail", message)
        if self.fail_error is not None:
            raise self.fail_error
        self.shown = message


async def started(handle: Handle, interval: float = INTERVAL) -> Delivery:
    delivery = Delivery(handle, Capabilities(max_message_length=1000, min_update_interval=interval))
    await delivery.start()
    return delivery


async def test_updates_are_spaced_and_only_the_newest_text_is_sent() -> None:
    handle = Handle()
    delivery = await started(handle)
    delivery.offer("a")
    await asyncio.sleep(0.02)  # "a" goes out at once: nothing was sent before
    for text in ("ab", "abc", "abcd"):
        delivery.offer(text)
        await asyncio.sleep(0.005)
    await asyncio.sleep(INTERVAL * 2)
    await delivery.finish("abcde")

    assert handle.texts("update") == ["a", "abcd"]  # "ab", "abc" skipped, not queued
    first, second = (when for when, call, _ in handle.calls if call == "update")
    assert second - first >= INTERVAL * 0.9
    assert handle.shown == "abcde" and delivery.shown_text == "abcde"
    assert delivery.updates_sent == 2


async def test_a_text_is_rendered_only_when_it_goes_out() -> None:
    # A long answer arrives in thousands of events; rendering each would cost more
    # than the platform updates themselves.
    rendered: list[str] = []

    def render(text: str) -> str:
        rendered.append(text)
        return text.upper()

    handle = Handle()
    delivery = Delivery(handle, Capabilities(1000, INTERVAL), render)
    await delivery.start()
    for end in range(1, 501):
        delivery.offer("x" * end)
        if end % 50 == 0:
            await asyncio.sleep(INTERVAL / 2)
    await delivery.finish("x" * 500)
    updates = handle.texts("update")
    assert 2 <= len(updates) <= 10 and all(t == t.upper() for t in updates)
    assert len(rendered) <= len(updates) + 2  # each update, the final text, one stale
    assert handle.shown == "X" * 500


async def test_an_update_over_budget_is_offered_again_with_the_newest_text() -> None:
    handle = Handle(refuse=1)
    delivery = await started(handle)
    delivery.offer("a")
    await asyncio.sleep(0.02)
    assert handle.texts("update") == ["a"] and delivery.shown_text == ""
    delivery.offer("ab")  # arrives while the refused text waits for the budget
    await asyncio.sleep(INTERVAL * 2)
    assert handle.texts("update") == ["a", "ab"]
    assert delivery.shown_text == "ab"
    # Refused with nothing newer: the same text is tried again.
    handle.refuse = 1
    delivery.offer("abc")
    await asyncio.sleep(INTERVAL * 3)
    assert handle.texts("update") == ["a", "ab", "abc", "abc"]
    assert delivery.shown_text == "abc"
    await delivery.finish("abc!")
    assert handle.shown == "abc!"


async def test_the_final_text_lands_after_an_update_under_way() -> None:
    handle = Handle(update_delay=0.2)
    delivery = await started(handle, interval=0.0)
    delivery.offer("partial")
    await asyncio.sleep(0.05)
    assert handle.in_flight == 1
    await delivery.finish("the whole answer")

    calls = [call for _, call, _ in handle.calls]
    assert calls == ["start", "update", "updated", "finish", "finish alone"]
    assert handle.shown == "the whole answer"  # not overwritten by the late update


async def test_a_stop_from_the_platform_is_reported_and_ends_the_updates() -> None:
    handle = Handle(stop=True)
    delivery = await started(handle, interval=0.0)
    delivery.offer("a")
    await asyncio.wait_for(delivery.stopped.wait(), 1)
    delivery.offer("ab")
    await asyncio.sleep(0.05)
    assert handle.texts("update") == ["a"]
    await delivery.end_stopped()
    assert handle.texts("finish") == ["_(stopped)_"]  # what the thread showed, marked


@pytest.mark.parametrize(
    "error", [PlatformFailed("stream gone"), RuntimeError("bug in the adapter")]
)
async def test_fail_never_raises(error: Exception) -> None:
    handle = Handle(update_delay=0.1, fail_error=error)
    delivery = await started(handle, interval=0.0)
    delivery.offer("a")
    await asyncio.sleep(0.02)
    await delivery.fail("The model could not answer this message. Please try again.")
    # The message was attempted once, after the update under way.
    assert [call for _, call, _ in handle.calls][-3:] == ["update", "updated", "fail"]
