"""A chat the bridge wrote renders in Open WebUI's own web page with every
question and every complete answer (headless Debian Chromium driven by Playwright)."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, async_playwright

from bridge.store import TurnStatus
from tests.contract.bridge_fixtures import BridgeFactory, ask
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[2] / ".test-artifacts"
TIMEOUT_MS = 60_000

# Buttons that close Open WebUI's changelog / "what's new" / onboarding dialogs.
DISMISS = ["Okay, Let's Go!", "Got it", "Close", "Dismiss", "Skip"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def chromium(in_ci: bool) -> str:
    """Debian's chromium; missing is a skip on a laptop and a failure in CI."""
    if shutil.which(CHROMIUM) is None:
        reason = f"Debian chromium not installed at {CHROMIUM} (make test-deps installs it)"
        if in_ci:
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


async def dismiss_dialogs(page: Page) -> None:
    """Close any modal that covers the chat; harmless when there is none."""
    for name in DISMISS:
        button = page.get_by_role("button", name=name, exact=True)
        with contextlib.suppress(PlaywrightError):
            if await button.count() and await button.first.is_visible():
                await button.first.click(timeout=2_000)
    await page.keyboard.press("Escape")


async def wait_for_texts(page: Page, texts: list[str]) -> None:
    await page.wait_for_function(
        "texts => texts.every(t => document.body.innerText.includes(t))",
        arg=texts,
        timeout=TIMEOUT_MS,
        polling=500,
    )


async def test_chat_renders_in_open_webui(
    chromium: str, openwebui: RunningOpenWebUI, make_bridge: BridgeFactory
) -> None:
    questions = ["Render question one", "Render question two", "Render question three"]
    async with make_bridge() as runtime:
        turns = [await ask(runtime, q, "render") for q in questions]
    assert [result.status for _, result in turns] == [TurnStatus.DONE] * 3
    answers = [expected_reply(q) for q in questions]
    assert [reply.final for reply, _ in turns] == answers
    assert len({result.chat_id for _, result in turns}) == 1
    chat_id = turns[0][1].chat_id

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1600})
            page.set_default_timeout(TIMEOUT_MS)
            # Log in the way the web UI does: the JWT lives in localStorage.token.
            # A stored version that matches the server keeps the changelog closed.
            await page.goto(f"{openwebui.url}/auth", wait_until="domcontentloaded")
            await page.evaluate(
                "([token, version]) => {"
                " localStorage.setItem('token', token);"
                " localStorage.setItem('version', version); }",
                [openwebui.jwt, openwebui.version],
            )
            await page.goto(f"{openwebui.url}/c/{chat_id}", wait_until="domcontentloaded")
            await page.get_by_text(questions[0]).first.wait_for()
            await dismiss_dialogs(page)
            await wait_for_texts(page, [*questions, *answers])
            await page.wait_for_timeout(500)  # let the last render settle for the picture
            await dismiss_dialogs(page)
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(
                path=str(ARTIFACTS / f"render-{openwebui.version}.png"), full_page=True
            )
            body = await page.inner_text("body")
            url = page.url
        finally:
            await browser.close()

    assert url.endswith(f"/c/{chat_id}"), f"not on the chat page: {url}"
    for text in [*questions, *answers]:
        assert body.count(text) >= 1, f"{text!r} not shown"
    # In order: question, its answer, next question, ...
    positions = [body.index(text) for pair in zip(questions, answers, strict=True) for text in pair]
    assert positions == sorted(positions)
