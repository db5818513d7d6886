"""A chat the bridge wrote renders in Open WebUI's own web page with every
question and every answer (headless Debian Chromium driven by Playwright)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from bridge.store import TurnStatus
from tests.contract.bridge_fixtures import BridgeFactory, ask
from tests.harness.openwebui import RunningOpenWebUI

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[2] / ".test-artifacts"


@pytest.mark.browser
@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian chromium not installed")
async def test_chat_renders_in_open_webui(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    questions = ["Render question one", "Render question two", "Render question three"]
    async with make_bridge() as runtime:
        turns = [await ask(runtime, q, "render") for q in questions]
    assert all(result.status is TurnStatus.DONE for _, result in turns)
    answers = [reply.final for reply, _ in turns]
    chat_id = turns[0][1].chat_id

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 2400})
            await page.goto(f"{openwebui.url}/auth", wait_until="domcontentloaded")
            await page.evaluate("token => localStorage.setItem('token', token)", openwebui.jwt)
            await page.goto(f"{openwebui.url}/c/{chat_id}", wait_until="domcontentloaded")
            for text in [*questions, *answers]:
                assert text is not None
                await page.get_by_text(text, exact=False).first.wait_for(timeout=90_000)
            await page.keyboard.press("Escape")  # a "what's new" dialog may cover the chat
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / f"render-{openwebui.version}.png"))
            body = await page.inner_text("body")
        finally:
            await browser.close()
    for text in [*questions, *answers]:
        assert text in body
