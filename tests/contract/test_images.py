"""Images out, against real Open WebUI servers: Open WebUI's image generation is
pointed at a model server of this test's own (``/v1/images/generations`` answers a
small PNG), a turn asks with ``features.image_generation``, and the reply's
``attach`` gets that PNG, byte for byte, after the unchanged answer text.

Where the image lands differs: 0.6.15 announces it only in the live ``files``
event; from 0.6.41 the stored answer's ``files`` holds it too. From 0.11 the
server generates it for the feature only with legacy function calling (native
lets the model call a tool), so the turn uses a workspace model that sets it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.runtime import open_runtime
from bridge.channels import load_channels
from tests.contract.bridge_fixtures import MODEL, admin_request, ask, fetch_chat, settings_for
from tests.harness.model_server import IMAGE_PNG, ModelServer, ThreadedModelServer
from tests.harness.openwebui import RunningOpenWebUI

pytestmark = pytest.mark.every_release

CHANNEL = "c"  # the channel of every test event (bridge_fixtures.event)


@pytest.fixture(scope="module")
def image_server() -> Iterator[ThreadedModelServer]:
    """A model server of this module's own: the shared one predates its image route."""
    server = ModelServer.run_in_thread()
    yield server
    server.stop()


def _configure(server: RunningOpenWebUI, url: str) -> dict[str, Any]:
    """Point image generation at ``url``; returns the configuration it replaced."""
    before: dict[str, Any] = admin_request(server, "GET", "/api/v1/images/config").json()
    if "ENABLE_IMAGE_GENERATION" in before:  # 0.6.41 on: one flat form
        after = before | {
            "ENABLE_IMAGE_GENERATION": True,
            "ENABLE_IMAGE_PROMPT_GENERATION": False,
            "IMAGE_GENERATION_ENGINE": "openai",
            "IMAGE_GENERATION_MODEL": "fake-image",
            "IMAGE_SIZE": "64x64",
            "IMAGE_STEPS": before.get("IMAGE_STEPS") or 0,
            "IMAGES_OPENAI_API_BASE_URL": url,
            "IMAGES_OPENAI_API_KEY": "sk-test",
        }
        admin_request(server, "POST", "/api/v1/images/config/update", json=after)
    else:  # 0.6.15: engine settings and the image model apart
        after = before | {
            "enabled": True,
            "engine": "openai",
            "prompt_generation": False,
            "openai": {"OPENAI_API_BASE_URL": url, "OPENAI_API_KEY": "sk-test"},
        }
        admin_request(server, "POST", "/api/v1/images/config/update", json=after)
        image = {"MODEL": "fake-image", "IMAGE_SIZE": "64x64", "IMAGE_STEPS": 0}
        admin_request(server, "POST", "/api/v1/images/image/config/update", json=image)
    return before


def _delete_model(server: RunningOpenWebUI, model_id: str) -> None:
    if server.release > (0, 6, 15):  # a POST with the id in the body later on
        admin_request(server, "POST", "/api/v1/models/model/delete", json={"id": model_id})
    else:
        admin_request(server, "DELETE", "/api/v1/models/model/delete", params={"id": model_id})


def _restore(server: RunningOpenWebUI, before: dict[str, Any]) -> None:
    admin_request(server, "POST", "/api/v1/images/config/update", json=before)


@pytest.fixture
async def image_model(
    openwebui: RunningOpenWebUI, image_server: ThreadedModelServer
) -> AsyncIterator[str]:
    """A workspace model over the test model that generates images for the feature."""
    before = await asyncio.to_thread(_configure, openwebui, image_server.url)
    model_id = f"fake-image-model-{uuid.uuid4().hex[:6]}"
    form = {
        "id": model_id,
        "name": model_id,
        "base_model_id": MODEL,
        "meta": {"description": "images for tests"},
        "params": {"function_calling": "legacy"},
        "access_control": None,
    }
    admin_request(openwebui, "POST", "/api/v1/models/create", json=form)
    # The completion endpoint knows the models the last listing found.
    admin_request(openwebui, "GET", "/api/models")
    try:
        yield model_id
    finally:
        _delete_model(openwebui, model_id)
        await asyncio.to_thread(_restore, openwebui, before)


async def test_a_generated_image_reaches_the_thread_as_an_image(
    openwebui: RunningOpenWebUI,
    image_model: str,
    image_server: ThreadedModelServer,
    tmp_path: Path,
) -> None:
    settings = settings_for(openwebui, tmp_path / "bridge.db")
    rules = {"id": CHANNEL, "model": image_model, "features": {"image_generation": True}}
    channels = load_channels(settings, {"channels": [rules]})
    async with open_runtime(settings, channels=channels) as runtime:
        reply, result = await ask(runtime, "Draw a teal square", f"img-{uuid.uuid4().hex[:6]}")
    assert result.status.value == "done", result.error
    assert any(r.path == "/v1/images/generations" for r in image_server.server.requests)
    # The answer's text as Open WebUI stored it; the image arrives as a file after it.
    chat = fetch_chat(openwebui, str(result.chat_id))
    history = chat["chat"]["history"]
    stored = history["messages"][history["currentId"]]["content"]
    assert reply.final == stored
    assert len(reply.attached) == 1, reply.attached
    (image,) = reply.attached[0]
    assert image.mimetype == "image/png" and image.name.endswith(".png")
    assert image.data == IMAGE_PNG
    # The Open WebUI chat shows the image on the answer, as the web UI would have it.
    files = history["messages"][history["currentId"]].get("files") or []
    assert [f["type"] for f in files] == ["image"], files
