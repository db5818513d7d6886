"""What a finished answer brings to the thread besides its text, through the real core
against the fake Open WebUI: its sources as a footer, a long code block as a file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from bridge.channels import ChannelRules, Channels
from bridge.reply import OutFile
from tests.bridge.openwebui.fake_openwebui import Answer
from tests.bridge.test_intake import RELEASES, BridgeMaker, Reply, _bridges, question, submit

pytestmark = pytest.mark.timeout(20)

CODE = "\n".join(f"value_{i} = compute({i})" for i in range(200))  # over 3,000 characters
SOURCES = [
    {
        "source": {"id": "f1", "name": "guide.md"},
        "document": ["The guide."],
        "metadata": [{"source": "f1", "name": "guide.md"}],
    }
]


@pytest.fixture(params=RELEASES)
async def make(request: pytest.FixtureRequest) -> AsyncIterator[BridgeMaker]:
    async with _bridges(request.param) as maker:
        yield maker


@pytest.fixture
def attached(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[list[OutFile]]]:
    calls: dict[str, list[list[OutFile]]] = {}

    async def attach(self: Reply, files: Sequence[OutFile]) -> None:
        calls.setdefault(self.message_id, []).append(list(files))

    monkeypatch.setattr(Reply, "attach", attach)
    return calls


def answer_with_code_and_sources(answer: Answer) -> None:
    answer.message["sources"] = SOURCES
    answer.finish(f"Here it is:\n\n```python\n{CODE}\n```\n\nAs the guide says [1].")


async def test_sources_footer_and_code_file(
    make: BridgeMaker, attached: dict[str, list[list[OutFile]]]
) -> None:
    s = await make()
    s.fake.on_completion = answer_with_code_and_sources
    await (await submit(s, question("q1")))
    reply = s.platform.replies["q1"]
    assert reply.final == (
        "Here it is:\n\n_(code: 4,779 characters, in the attached `snippet.py`)_\n\n"
        "As the guide says [1].\n\nSources: [1] guide.md"
    )
    [[file]] = attached["q1"]
    assert (file.name, file.mimetype, file.data) == (
        "snippet.py",
        "text/plain",
        f"{CODE}\n".encode(),
    )


async def test_no_footer_where_the_channel_turns_sources_off(
    make: BridgeMaker, attached: dict[str, Any]
) -> None:
    channels = Channels(by_id={"c": ChannelRules(show_sources=False)})
    s = await make(channels=channels)
    s.fake.on_completion = lambda answer: (
        answer.message.update(sources=SOURCES),
        answer.finish("Plain [1]."),
    )
    await (await submit(s, question("q1")))
    assert s.platform.replies["q1"].final == "Plain [1]."
    assert attached == {}


async def test_an_image_open_webui_cannot_give_is_counted_above_the_answer(
    make: BridgeMaker, attached: dict[str, Any]
) -> None:
    s = await make()
    missing = {"type": "image", "url": "/api/v1/files/gone/content"}
    s.fake.on_completion = lambda answer: (
        answer.message.update(files=[missing]),
        answer.finish("Here is your picture."),
    )
    await (await submit(s, question("q1")))
    assert s.platform.replies["q1"].final == (
        "_(1 image of this answer could not be read from Open WebUI.)_\n\nHere is your picture."
    )
    assert attached == {}
