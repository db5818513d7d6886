"""Files on Discord end to end: the real discord.py client and the local Discord server's
attachment CDN, the real core, real Open WebUI (its file handling and image
generation), the model server's record of what the model was sent, real SQLite.

Judged by what a person sees in the thread, what the model received and what the
Open WebUI chat keeps on the question.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.contract.test_images import image_model as image_model  # a fixture
from tests.contract.test_images import image_server as image_server  # a fixture
from tests.e2e import test_discord
from tests.e2e.files_kit import (
    Model,
    in_context,
    latest_answer,
    marked_png,
    pdf,
    question_files,
    saw_image,
    unique,
    uploads_named,
)
from tests.e2e.files_kit import refusing as refusing  # a fixture
from tests.e2e.test_discord import ADA, MENTION, Harness
from tests.fakes.discord_cdn import FakeFile
from tests.fakes.discord_server import Message
from tests.harness.model_server import IMAGE_PNG
from tests.harness.openwebui import RunningOpenWebUI

Make = Callable[..., Any]  # test_discord.discord_bridge's keywords: bridge, channels


@pytest.fixture
def make(openwebui: RunningOpenWebUI, tmp_path: Path) -> Make:
    return lambda **kw: test_discord.discord_bridge(openwebui, tmp_path, **kw)


def png_file(name: str, marker: str, padding: int = 0) -> FakeFile:
    return FakeFile(name, marked_png(marker) + b"\0" * padding, "image/png")


async def shown(h: Harness, channel: str, *, count: int = 1) -> list[Message]:
    """The bot's messages in ``channel`` once ``count`` are there and the bridge is idle;
    a little later, so a late duplicate would show too."""
    await h.fake.wait_for(
        lambda: len(h.fake.bot_messages(channel)) >= count and h.runtime.bridge.idle,
        timeout=60,
        what=f"{count} answer(s)",
    )
    await asyncio.sleep(0.5)
    return h.fake.bot_messages(channel)


async def test_a_png_reaches_the_model_as_an_image_and_shows_on_the_question(
    openwebui: RunningOpenWebUI, make: Make, model_server: Model
) -> None:
    marker = unique("picture-")
    async with make() as h:
        q = f"what is in {marker}?"
        thread = h.fake.user_says(
            h.general, h.ada, f"{MENTION} {q}", files=[png_file("shot.png", marker)]
        ).id
        [answer] = await shown(h, thread)
        [chat_id] = h.chat_ids(thread)
        assert answer.content == latest_answer(openwebui, chat_id)
        assert in_context(model_server, f"{ADA}: {q}")
        assert saw_image(model_server, marker), "the model was not sent the picture"
        [[on_question]] = question_files(openwebui, chat_id)
    assert on_question["type"] == "image" and on_question["name"] == "shot.png"


@pytest.mark.parametrize("kind", ["txt", "pdf"])
async def test_a_document_reaches_the_models_context(
    openwebui: RunningOpenWebUI, make: Make, model_server: Model, kind: str
) -> None:
    secret = unique("LaunchCode")
    sentence = f"The code is {secret}"
    data = pdf(sentence) if kind == "pdf" else f"{sentence}\n".encode()
    mimetype = "application/pdf" if kind == "pdf" else "text/plain; charset=utf-8"
    async with make() as h:
        thread = h.fake.user_says(
            h.general,
            h.ada,
            f"{MENTION} what is the code? {kind}",
            files=[FakeFile(f"plan.{kind}", data, mimetype)],
        ).id
        [answer] = await shown(h, thread)
        [chat_id] = h.chat_ids(thread)
        # No note: it was read, and the answer names it as its source.
        stored = latest_answer(openwebui, chat_id)
        assert answer.content == f"{stored}\n\nSources: [1] plan.{kind}"
        assert in_context(model_server, secret), "the document's text never reached the model"
        [[on_question]] = question_files(openwebui, chat_id)
    assert on_question["type"] == "file" and on_question["name"] == f"plan.{kind}"


BOUNDS = {"bridge_max_file_mb": 1, "bridge_max_files": 2}


@pytest.mark.parametrize("case", ["over-size", "too many", "refused type"])
async def test_a_file_left_out_gets_its_note_and_the_text_is_answered(
    openwebui: RunningOpenWebUI,
    make: Make,
    model_server: Model,
    request: pytest.FixtureRequest,
    case: str,
) -> None:
    files: list[FakeFile]
    if case == "over-size":
        files = [png_file("big.png", "x", padding=1024 * 1024)]
        note = "_big.png was not read: it is larger than 1 MB._"
    elif case == "too many":
        files = [png_file(f"{n}.png", n) for n in ("a", "b", "c")]
        note = "_1 more file was not read (c.png): at most 2 per message._"
    else:
        refused = request.getfixturevalue("refusing")
        files = [FakeFile(f"tool.{refused}", b"MZ\x90\x00 not a program")]
        # 0.6.15 answers the refusal with "Error uploading file", nothing more.
        why = (
            "does not accept this type of file"
            if openwebui.release > (0, 6, 15)
            else "could not read it"
        )
        note = f"_tool.{refused} was not read: Open WebUI {why}._"
    async with make(bridge=BOUNDS) as h:
        q = f"answer anyway {unique('')}"
        thread = h.fake.user_says(h.general, h.ada, f"{MENTION} {q}", files=files).id
        [answer] = await shown(h, thread)
        [chat_id] = h.chat_ids(thread)
        stored = latest_answer(openwebui, chat_id)
    assert answer.content == f"{note}\n\n{stored}"
    assert stored and in_context(model_server, f"{ADA}: {q}")  # the text was answered


async def test_a_file_alone_is_answered(
    openwebui: RunningOpenWebUI, make: Make, model_server: Model
) -> None:
    marker = unique("alone-")
    async with make() as h:
        dm = h.fake.add_dm(h.ada)
        h.fake.user_says(dm, h.ada, "", files=[png_file("photo.png", marker)])
        [answer] = await shown(h, dm)
        [chat_id] = h.chat_ids(dm)
        assert answer.content == latest_answer(openwebui, chat_id)
        assert saw_image(model_server, marker)
        [[on_question]] = question_files(openwebui, chat_id)
    assert on_question["name"] == "photo.png"


async def test_a_redelivered_message_uploads_its_file_once_and_gets_one_answer(
    openwebui: RunningOpenWebUI, make: Make
) -> None:
    name = f"{unique('notes-')}.txt"
    async with make() as h:
        notes = FakeFile(name, b"remember me\n", "text/plain")
        thread = h.fake.user_says(h.general, h.ada, f"{MENTION} read {name}", files=[notes]).id
        # What a resume from a stale sequence number delivers: the same message again.
        assert h.fake.replay_last(1) >= 1
        answers = await shown(h, thread)
        await asyncio.sleep(0.5)
        assert len(h.fake.bot_messages(thread)) == len(answers) == 1
        assert len(h.fake.threads()) == 1
    assert await uploads_named(openwebui, name) == 1


async def test_a_generated_image_arrives_on_the_answers_message(
    make: Make,
    image_model: str,  # the fixture: image generation on test_images' own model server
) -> None:
    def channels(general: str) -> list[dict[str, Any]]:
        return [{"id": general, "model": image_model, "features": {"image_generation": True}}]

    async with make(channels=channels) as h:
        thread = h.mention("Draw a teal square").id

        def with_file() -> list[Message]:
            return [m for m in h.fake.bot_messages(thread) if m.attachments]

        await h.fake.wait_for(
            lambda: with_file() and h.runtime.bridge.idle, timeout=60, what="the image"
        )
        await asyncio.sleep(0.5)
        [answer] = h.fake.bot_messages(thread)
        assert answer.content  # the answer's text stays as it was
        assert [data for _, data in h.fake.attached(answer)] == [IMAGE_PNG]
