"""Files and edits the bridge wrote, in Open WebUI's own web page (headless Debian
Chromium driven by Playwright, signed in as the admin): a question's files show on
the question as the web UI shows a person's attachments and open; an edited
question shows as the web UI's own edit, with "2/2" and the old branch at "1/2"."""

from __future__ import annotations

import base64
import contextlib
import re
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from bridge.events import FileRef
from bridge.store import TurnStatus
from tests.contract import test_sources
from tests.contract.bridge_fixtures import (
    BridgeFactory,
    RecordingReply,
    event,
    platform_of,
    submit,
)
from tests.contract.test_files import png, question_of
from tests.contract.test_sources import Collection, answer_with_sources
from tests.e2e.test_render import (
    ARTIFACTS,
    browser_page,
    dismiss_dialogs,
    load_until,
    wait_for_texts,
)
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI

pytestmark = [pytest.mark.browser, pytest.mark.every_release]

handbook = test_sources.collection  # a knowledge collection of two documents

# What the page shows on the question holding ``text``: Open WebUI renders each
# question as an element with the id "message-<id>" (every release tested); its
# images (loaded or not) and its whole text, so a file shown anywhere else (on the
# answer, or nowhere) is not counted.
ON_QUESTION = """([messageId]) => {
    const box = document.getElementById(`message-${messageId}`);
    if (!box) return null;
    return {
        text: box.innerText,
        images: [...box.querySelectorAll('img')].map(img => ({
            src: img.currentSrc || img.src,
            loaded: img.complete && img.naturalWidth > 0,
        })),
    };
}"""

# The chat's messages, without the sidebar (which lists the chat by its title).
MESSAGES = "#messages-container"

# Bytes at ``url`` fetched in the page as the web UI fetches its files: the admin's
# session (its cookie, and the token the web UI sends as a bearer).
FETCH_BASE64 = """async (url) => {
    const response = await fetch(url, {
        credentials: 'include',
        headers: url.startsWith('data:') ? {} : {Authorization: `Bearer ${localStorage.token}`},
    });
    if (!response.ok) return `HTTP ${response.status}`;
    const bytes = new Uint8Array(await response.arrayBuffer());
    let text = '';
    for (const b of bytes) text += String.fromCharCode(b);
    return btoa(text);
}"""


async def fetched(page: Page, url: str) -> bytes | str:
    """The bytes the admin's page gets at ``url``, or "HTTP <status>"."""
    got = await page.evaluate(FETCH_BASE64, url)
    return got if str(got).startswith("HTTP ") else base64.b64decode(got)


async def picture(page: Page, name: str) -> None:
    """A full-page screenshot without the toasts other chats' answers raise (other
    tests share the server), which cover the question at the top right."""
    await page.add_style_tag(content="[data-sonner-toaster] { display: none !important; }")
    await page.wait_for_timeout(500)  # let the last render settle for the picture
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)


async def shown_on(page: Page, message_id: str) -> dict[str, Any]:
    shown = await page.evaluate(ON_QUESTION, [message_id])
    assert shown is not None, f"question {message_id} is not on the page"
    return dict(shown)


async def test_files_sent_with_a_question_show_on_it_and_open(
    chromium: str, openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    tag = uuid.uuid4().hex[:8]
    question = f"What do these files show {tag}?"
    note = f"Meeting notes {tag}: the launch moves to Friday.\n".encode()
    image = FileRef("P1", f"shot-{tag}.png", "image/png", len(png()))
    document = FileRef("D1", f"notes-{tag}.txt", "text/plain", len(note))
    async with make_bridge() as runtime:
        platform_of(runtime).served.update({"P1": png(), "D1": note})
        e = replace(event(question, f"render-files-{tag}"), files=(image, document))
        reply = RecordingReply()
        result = await (await submit(runtime, e, reply))
    assert result.status is TurnStatus.DONE and result.chat_id is not None
    answer = (reply.final or "").splitlines()[0]
    asked = question_of(openwebui, result.chat_id, question)
    # The document's id in Open WebUI, to open it as the admin (the page's chip
    # opens a preview, whose look differs between releases).
    documents = [f["id"] for f in asked.get("files") or [] if f.get("type") != "image"]

    async with browser_page(chromium, openwebui) as page:
        path = f"/c/{result.chat_id}"
        await load_until(page, openwebui, path, page.get_by_text(question).first)
        await dismiss_dialogs(page)
        await wait_for_texts(page, [question, answer])
        # The thumbnail loads (the 2x2 picture), as a person's attached image does.
        with contextlib.suppress(PlaywrightError):  # none loads: the assert below says so
            await page.wait_for_function(
                "id => [...(document.getElementById(`message-${id}`)?.querySelectorAll('img')"
                " || [])].some(img => img.complete && img.naturalWidth > 0)",
                arg=asked["id"],
                timeout=30_000,
                polling=500,
            )
        await picture(page, f"render-files-{openwebui.version}.png")
        shown = await shown_on(page, asked["id"])
        thumbnails = [i for i in shown["images"] if i["loaded"]]
        image_bytes = [await fetched(page, i["src"]) for i in thumbnails]
        opened = [
            await fetched(page, f"{openwebui.url}/api/v1/files/{file_id}/content")
            for file_id in documents
        ]

    # On the question: the document's chip with its name and the picture's thumbnail.
    assert document.name in shown["text"], shown["text"]
    assert png() in image_bytes, f"no thumbnail of the PNG on the question: {shown['images']}"
    # An admin opens the document: the bytes the platform served.
    assert opened == [note]


async def test_an_edited_question_shows_as_the_web_uis_own_edit(
    chromium: str, openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    tag = uuid.uuid4().hex[:8]
    old, new = f"The first wording {tag}", f"The wording as meant {tag}"
    async with make_bridge() as runtime:
        first = event(old, f"render-edit-{tag}")
        answered = await (await submit(runtime, first, RecordingReply()))
        assert answered.status is TurnStatus.DONE and answered.chat_id
        pending = await runtime.bridge.edit(replace(first, event_id=f"edit-{tag}", text=new))
        assert pending is not None
        edited = await pending
    assert edited.status is TurnStatus.DONE
    chat_id = answered.chat_id

    async with browser_page(chromium, openwebui) as page:
        await load_until(page, openwebui, f"/c/{chat_id}", page.get_by_text(new).first)
        await dismiss_dialogs(page)
        # The web UI's sibling navigation on the question: the second of two questions.
        with contextlib.suppress(PlaywrightError):  # not shown: the assert says what is
            await wait_for_texts(page, ["2/2", new, expected_reply(new)])
        await picture(page, f"render-edit-{openwebui.version}.png")
        now = await page.inner_text(MESSAGES)
        assert "2/2" in now and new in now and expected_reply(new) in now, now
        # Back to the first wording: the question's "previous" button, beside "2/2".
        counter = page.get_by_text("2/2", exact=True).first
        await counter.locator("xpath=preceding-sibling::button[1]").click()
        await wait_for_texts(page, ["1/2", old, expected_reply(old)])
        await picture(page, f"render-edit-back-{openwebui.version}.png")
        before = await page.inner_text(MESSAGES)

    assert old not in now and expected_reply(old) not in now
    assert "1/2" in before and old in before and expected_reply(old) in before
    assert new not in before and expected_reply(new) not in before


async def test_an_answers_sources_show_under_it(
    chromium: str, openwebui: RunningOpenWebUI, handbook: Collection, tmp_path: Path
) -> None:
    question = f"What do they say? {uuid.uuid4().hex[:8]}"
    _, chat_id = await answer_with_sources(
        openwebui, tmp_path, {"knowledge_ids": [handbook.id]}, question
    )
    async with browser_page(chromium, openwebui) as page:
        await load_until(page, openwebui, f"/c/{chat_id}", page.get_by_text(question).first)
        await dismiss_dialogs(page)
        # The web UI's citations under the answer: "2 Sources" (0.12.x folds them
        # behind it), or the documents' names (0.6.x).
        names = list(handbook.names)
        sources = page.locator(MESSAGES).get_by_text(re.compile(r"^\d+ Sources$"))
        with contextlib.suppress(PlaywrightError):
            await sources.or_(page.get_by_text(names[0]).first).first.wait_for()
        if await sources.count() and not await page.get_by_text(names[0]).count():
            await sources.first.click()
        with contextlib.suppress(PlaywrightError):  # not shown: the assert says what is
            await wait_for_texts(page, names)
        await picture(page, f"render-sources-{openwebui.version}.png")
        shown = await page.inner_text(MESSAGES)
    for name in names:
        assert name in shown, shown
