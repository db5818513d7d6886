"""Reply pacing: updates are spaced by the platform's interval and the last text always lands."""

from __future__ import annotations

import asyncio
import itertools
import time

from bridge.pacing import PacedReply
from bridge.reply import Capabilities


class Recorder:
    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[str, str, float]] = []
        self.delay = delay

    async def start(self) -> None:
        self.calls.append(("start", "", time.monotonic()))

    async def update(self, text: str) -> None:
        await asyncio.sleep(self.delay)
        self.calls.append(("update", text, time.monotonic()))

    async def finish(self, text: str) -> None:
        self.calls.append(("finish", text, time.monotonic()))

    async def fail(self, message: str) -> None:
        self.calls.append(("fail", message, time.monotonic()))


async def test_updates_are_spaced_and_coalesced() -> None:
    handle = Recorder()
    paced = PacedReply(handle, Capabilities(max_message_length=100, min_update_interval=0.2))
    text = ""
    for n in range(20):  # 20 tokens in ~0.5 s
        text += f"t{n} "
        await paced.update(text)
        await asyncio.sleep(0.025)
    await asyncio.sleep(0.25)
    await paced.finish(text + "end")

    updates = [c for c in handle.calls if c[0] == "update"]
    assert 2 <= len(updates) <= 5
    gaps = [b[2] - a[2] for a, b in itertools.pairwise(updates)]
    assert all(gap >= 0.19 for gap in gaps), gaps
    assert updates[-1][1] == text  # the newest pending text was sent, not an old one
    assert handle.calls[-1][:2] == ("finish", text + "end")


async def test_finish_waits_for_an_update_in_flight_and_cancels_pending() -> None:
    handle = Recorder(delay=0.1)
    paced = PacedReply(handle, Capabilities(max_message_length=100, min_update_interval=0.5))
    await paced.update("a")  # sent at once, takes 0.1 s
    await paced.update("ab")  # pending behind the interval
    await paced.finish("abc")
    assert [c[:2] for c in handle.calls] == [("update", "a"), ("finish", "abc")]


async def test_fail_after_text() -> None:
    handle = Recorder()
    paced = PacedReply(handle, Capabilities(max_message_length=100, min_update_interval=0))
    await paced.update("partial")
    await paced.fail("The answer took too long")
    assert [c[0] for c in handle.calls] == ["update", "fail"]
