"""Files on Slack end to end: a real Bolt app (Socket Mode; HTTP mode too for a
redelivery) and the local Slack server's files, the real core, real Open WebUI (its
file handling and image generation), the model server's record of what the model was
sent, real SQLite.

Judged by what a person sees in the thread, what the model received and what the
Open WebUI chat keeps on the question.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.contract.test_images import image_model as image_model  # a fixture
from tests.contract.test_images import image_server as image_server  # a fixture
from tests.e2e import test_slack
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
from tests.e2e.test_slack import ALICE, CHANNEL, DM, Harness, Make, chat_for
from tests.fakes.slack_server import BOT_USER_ID, Message
from tests.harness.model_server import IMAGE_PNG
from tests.harness.openwebui import RunningOpenWebUI

MENTION = f"<@{BOT_USER_ID}>"


@pytest.fixture
def make(openwebui: RunningOpenWebUI, tmp_path: Path) -> Make:
    return lambda mode, **kw: test_slack.slack_bridge(openwebui, tmp_path, mode, **kw)


async def ask(
    h: Harness, text: str, files: list[Any], *, channel: str = CHANNEL, retries: bool = False
) -> str:
    """Alice posts ``text`` with ``files`` (the fake's stored files); every event Slack
    sends for it is delivered (and with ``retries``, delivered again as Slack retries)."""
    ts, message, mention = h.fake.user_says(channel, ALICE, text, files=files)
    await h.deliver(message)
    if mention is not None:
        await h.deliver(mention)
    if retries:
        if mention is not None:
            await h.deliver(mention, retry=1)
        await h.deliver(message, retry=2)
    return ts


def seen(text: str) -> str:
    """The question as the model reads it: Alice's name, no mention."""
    return f"Alice: {text.replace(f'{MENTION} ', '')}"


async def texts(h: Harness, channel: str, ts: str, count: int = 1) -> list[str]:
    replies = await h.answers(channel, ts, count)
    await asyncio.sleep(0.5)  # a late second answer would show by now
    return [m.text for m in h.fake.bot_replies(channel, ts)] if replies else []


async def test_a_png_reaches_the_model_as_an_image_and_shows_on_the_question(
    openwebui: RunningOpenWebUI, make: Make, model_server: Model
) -> None:
    marker = unique("picture-")
    async with make("socket") as h:
        shot = h.fake.add_file("shot.png", marked_png(marker))
        q = f"{MENTION} what is in {marker}?"
        ts = await ask(h, q, [shot])
        shown_text = await texts(h, CHANNEL, ts)
        chat_id = str(chat_for(openwebui, h)["id"])
        assert shown_text == [latest_answer(openwebui, chat_id)]
        assert in_context(model_server, seen(q))
        assert saw_image(model_server, marker), "the model was not sent the picture"
        [[shown]] = question_files(openwebui, chat_id)
    assert shown["type"] == "image" and shown["name"] == "shot.png"


@pytest.mark.parametrize("kind", ["txt", "pdf"])
async def test_a_document_reaches_the_models_context(
    openwebui: RunningOpenWebUI, make: Make, model_server: Model, kind: str
) -> None:
    secret = unique("LaunchCode")
    sentence = f"The code is {secret}"
    data = pdf(sentence) if kind == "pdf" else f"{sentence}\n".encode()
    async with make("socket") as h:
        plan = h.fake.add_file(f"plan.{kind}", data)
        ts = await ask(h, f"{MENTION} what is the code? {kind}", [plan])
        [shown_text] = await texts(h, CHANNEL, ts)
        chat_id = str(chat_for(openwebui, h)["id"])
        # No note: it was read, and the answer names it as its source.
        answer = latest_answer(openwebui, chat_id)
        assert shown_text == f"{answer}\n\nSources: [1] plan.{kind}"
        assert in_context(model_server, secret), "the document's text never reached the model"
        [[shown]] = question_files(openwebui, chat_id)
    assert shown["type"] == "file" and shown["name"] == f"plan.{kind}"


BOUNDS = {"bridge_max_file_mb": 1, "bridge_max_files": 2}


@pytest.mark.parametrize("case", ["over-size", "too many", "refused type"])
async def test_a_file_left_out_gets_its_note_and_the_text_is_answered(
    openwebui: RunningOpenWebUI,
    make: Make,
    model_server: Model,
    request: pytest.FixtureRequest,
    case: str,
) -> None:
    async with make("socket", bridge=BOUNDS) as h:
        if case == "over-size":
            files = [h.fake.add_file("big.png", marked_png("x") + b"\0" * (1024 * 1024))]
            note = "_big.png was not read: it is larger than 1 MB._"
        elif case == "too many":
            files = [h.fake.add_file(f"{n}.png", marked_png(n)) for n in ("a", "b", "c")]
            note = "_1 more file was not read (c.png): at most 2 per message._"
        else:
            refused = request.getfixturevalue("refusing")
            files = [h.fake.add_file(f"tool.{refused}", b"MZ\x90\x00 not a program")]
            # 0.6.15 answers the refusal with "Error uploading file", nothing more.
            why = (
                "does not accept this type of file"
                if openwebui.release > (0, 6, 15)
                else "could not read it"
            )
            note = f"_tool.{refused} was not read: Open WebUI {why}._"
        q = f"{MENTION} answer anyway {unique('')}"
        ts = await ask(h, q, files)
        shown_text = await texts(h, CHANNEL, ts)
        answer = latest_answer(openwebui, str(chat_for(openwebui, h)["id"]))
    assert shown_text == [f"{note}\n\n{answer}"]
    assert answer and in_context(model_server, seen(q))  # the text was answered


async def test_a_file_alone_is_answered(
    openwebui: RunningOpenWebUI, make: Make, model_server: Model
) -> None:
    marker = unique("alone-")
    async with make("socket") as h:
        ts = await ask(h, "", [h.fake.add_file("photo.png", marked_png(marker))], channel=DM)
        shown_text = await texts(h, DM, ts)
        chat_id = str(chat_for(openwebui, h)["id"])
        assert shown_text == [latest_answer(openwebui, chat_id)]
        assert saw_image(model_server, marker)
        [[shown]] = question_files(openwebui, chat_id)
    assert shown["name"] == "photo.png"


@pytest.mark.parametrize("mode", test_slack.MODES)
async def test_a_redelivered_message_uploads_its_file_once_and_gets_one_answer(
    openwebui: RunningOpenWebUI, make: Make, mode: str
) -> None:
    name = f"{unique('notes-')}.txt"
    async with make(mode) as h:
        ts = await ask(h, f"{MENTION} read {name}", [h.fake.add_file(name)], retries=True)
        assert len(await texts(h, CHANNEL, ts)) == 1
    assert await uploads_named(openwebui, name) == 1


async def test_a_generated_image_arrives_in_the_thread_as_a_file(
    make: Make,
    image_model: str,  # the fixture: image generation on test_images' own model server
) -> None:
    channels = [{"id": CHANNEL, "model": image_model, "features": {"image_generation": True}}]
    async with make("socket", channels=channels) as h:
        ts = await ask(h, f"{MENTION} Draw a teal square", [])

        def with_file() -> list[Message]:
            return [m for m in h.fake.bot_replies(CHANNEL, ts) if m.files]

        await h.fake.wait_for(
            lambda: with_file() and h.runtime.bridge.idle, timeout=60, what="the image"
        )
        await asyncio.sleep(0.5)
        [posted] = with_file()
        [answer] = [m for m in h.fake.bot_replies(CHANNEL, ts) if not m.files]
    assert answer.text  # the answer's text stays as it was
    assert posted.thread_ts == ts
    assert [h.fake.file_data(f) for f in posted.files] == [IMAGE_PNG]
