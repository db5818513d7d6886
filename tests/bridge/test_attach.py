"""Files with a finished answer: handed to the reply after ``finish``; a platform that
refuses them leaves the answer whole, with one short notice (the reply's ``fail``,
which shows it below the answer) saying so."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from bridge.delivery import ATTACH_FAILED, Delivery
from bridge.errors import PlatformFailed
from bridge.reply import Capabilities, OutFile

pytestmark = pytest.mark.timeout(10)

PNG = OutFile("image.png", "image/png", b"\x89PNG...")


@dataclass
class Reply:
    refuse: bool = False
    calls: list[tuple[str, object]] = field(default_factory=list)

    async def start(self) -> None:
        self.calls.append(("start", None))

    async def update(self, text: str) -> bool:
        self.calls.append(("update", text))
        return True

    async def finish(self, text: str) -> None:
        self.calls.append(("finish", text))

    async def fail(self, message: str) -> None:
        self.calls.append(("fail", message))

    async def attach(self, files: Sequence[OutFile]) -> None:
        self.calls.append(("attach", tuple(files)))
        if self.refuse:
            raise PlatformFailed("files.completeUploadExternal: not_allowed")


async def finished(reply: Reply, files: Sequence[OutFile]) -> bool:
    delivery = Delivery(reply, Capabilities(1000, 0.0))
    await delivery.start()
    await delivery.finish("The answer.")
    return await delivery.attach(files)


async def test_files_go_to_the_reply_after_its_final_text() -> None:
    reply = Reply()
    assert await finished(reply, [PNG])
    assert reply.calls[1:] == [("finish", "The answer."), ("attach", (PNG,))]


async def test_no_files_no_attach_call() -> None:
    reply = Reply()
    assert await finished(reply, [])
    assert [call for call, _ in reply.calls] == ["start", "finish"]


async def test_a_refused_attach_keeps_the_answer_and_says_so_once() -> None:
    reply = Reply(refuse=True)
    assert not await finished(reply, [PNG])
    assert reply.calls[1:] == [
        ("finish", "The answer."),
        ("attach", (PNG,)),
        ("fail", ATTACH_FAILED),
    ]
