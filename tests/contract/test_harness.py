"""Harness self-tests: the fake model server alone, then end to end through
each real Open WebUI version."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.harness.model_server import (
    TITLE,
    Directives,
    ModelServer,
    RemoteModelServer,
    ThreadedModelServer,
    parse_directives,
    reply_text,
)
from tests.harness.openwebui import RunningOpenWebUI

# -- model server alone (fast) ----------------------------------------------


def _chat_body(text: str, *, stream: bool) -> dict[str, Any]:
    return {
        "model": "fake-model",
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }


async def _stream_text(client: httpx.AsyncClient, url: str, text: str) -> tuple[str, list[str]]:
    """Return (joined content, raw data lines) of a streamed completion."""
    content, lines = "", []
    async with client.stream("POST", url, json=_chat_body(text, stream=True)) as resp:
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            if not line.startswith("data: "):
                continue
            lines.append(line)
            if line == "data: [DONE]":
                break
            delta = json.loads(line[6:])["choices"][0]["delta"]
            content += delta.get("content") or ""
    return content, lines


def test_directives_parse_and_strip() -> None:
    d, clean = parse_directives("hi [[words=3]] there [[delay=0.5]] [[hang]] [[fail=429]]")
    assert (d.words, d.delay, d.hang, d.fail) == (3, 0.5, True, 429)
    assert clean == "hi there"
    assert reply_text("q", d) == 'Answer to "q": w1 w2 w3'


async def test_model_server_stream_and_json() -> None:
    server = ModelServer()
    await server.start()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            models = (await client.get(f"{server.url}/models")).json()
            assert "fake-model" in [m["id"] for m in models["data"]]

            url = f"{server.url}/chat/completions"
            streamed, lines = await _stream_text(client, url, "What is 2+2? [[words=7]]")
            assert streamed == 'Answer to "What is 2+2?": w1 w2 w3 w4 w5 w6 w7'
            assert lines[-1] == "data: [DONE]" and len(lines) > 3  # several chunks

            plain = (
                await client.post(url, json=_chat_body("What is 2+2? [[words=7]]", stream=False))
            ).json()
            assert plain["choices"][0]["message"]["content"] == streamed  # deterministic

            long, _ = await _stream_text(client, url, "long [[chars=5000]] [[delay=0]]")
            assert len(long) == 5000

            code, _ = await _stream_text(client, url, "show code [[code]]")
            assert "```python" in code

            err = await client.post(url, json=_chat_body("x [[fail=503]]", stream=True))
            assert err.status_code == 503 and "error" in err.json()

            title_prompt = (
                '### Task:\nGenerate a title.\nJSON format: { "title": "..." }\n'
                "<chat_history>USER: hi [[hang]]</chat_history>"
            )
            title, _ = await _stream_text(client, url, title_prompt)
            assert json.loads(title) == {"title": TITLE}

            recorded = (await client.get(f"{server.base_url}/_requests")).json()
            kinds = [r["kind"] for r in recorded]
            assert kinds.count("task") == 1 and kinds.count("chat") == 5
            await client.delete(f"{server.base_url}/_requests")
            assert (await client.get(f"{server.base_url}/_requests")).json() == []
    finally:
        await server.stop()


async def test_model_server_hang_and_stall_release_on_disconnect() -> None:
    server = ModelServer()
    await server.start()
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=0.5)) as client:
            url = f"{server.url}/chat/completions"
            with pytest.raises(httpx.ReadTimeout):
                await client.post(url, json=_chat_body("x [[hang]]", stream=True))
            with pytest.raises(httpx.ReadTimeout):
                await _stream_text(client, url, "x [[stall]] [[words=40]]")
    finally:
        started = time.monotonic()
        await server.stop()
        assert time.monotonic() - started < 5  # hung handlers don't block shutdown


def test_threaded_server_and_remote_view() -> None:
    handle = ModelServer.run_in_thread()
    try:
        resp = httpx.post(
            f"{handle.url}/chat/completions", json=_chat_body("hello", stream=False), timeout=10
        )
        assert resp.json()["choices"][0]["message"]["content"].startswith('Answer to "hello":')
        remote = RemoteModelServer(handle.url)
        assert [r["kind"] for r in remote.recorded()] == ["chat"]
        assert handle.recorded() == remote.recorded()
        remote.clear_requests()
        assert handle.recorded() == []
    finally:
        handle.stop()


# -- end to end through Open WebUI -------------------------------------------


async def test_chat_completion_lands_in_chat(
    openwebui: RunningOpenWebUI, model_server: ThreadedModelServer | RemoteModelServer
) -> None:
    """Tutorial flow (create chat, trigger completion, poll) with the API key."""
    question = f"Harness smoke {uuid.uuid4().hex[:6]}"
    expected = reply_text(question, Directives(words=5))
    prompt = f"{question} [[words=5]]"
    user_id, assistant_id = str(uuid.uuid4()), str(uuid.uuid4())
    now = int(time.time())
    user_msg = {
        "id": user_id,
        "parentId": None,
        "childrenIds": [assistant_id],
        "role": "user",
        "content": prompt,
        "timestamp": now,
        "models": ["fake-model"],
    }
    assistant_msg = {
        "id": assistant_id,
        "parentId": user_id,
        "childrenIds": [],
        "role": "assistant",
        "content": "",
        "model": "fake-model",
        "timestamp": now,
    }
    chat = {
        "title": "harness smoke",
        "models": ["fake-model"],
        "messages": [user_msg, assistant_msg],
        "history": {
            "currentId": assistant_id,
            "messages": {user_id: user_msg, assistant_id: assistant_msg},
        },
    }

    async with httpx.AsyncClient(
        base_url=openwebui.url, timeout=60, headers=openwebui.headers(api_key=True)
    ) as client:
        created = await client.post("/api/v1/chats/new", json={"chat": chat})
        assert created.status_code == 200, created.text
        chat_id = created.json()["id"]

        done = await client.post(
            "/api/chat/completions",
            json={
                "model": "fake-model",
                "stream": True,
                "chat_id": chat_id,
                "id": assistant_id,
                "session_id": f"harness-{uuid.uuid4().hex[:8]}",
                "assistant_message_id": assistant_id,
                "messages": [{"role": "user", "content": prompt}],
            },
        )
        assert done.status_code == 200, done.text

        content = await _poll_assistant(client, chat_id, assistant_id, expected)
    assert content == expected
    chats = [r for r in model_server.recorded() if r["kind"] == "chat"]
    assert any(last_user(r["body"]) == prompt for r in chats)


def last_user(body: dict[str, Any]) -> str:
    return next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")


async def _poll_assistant(
    client: httpx.AsyncClient, chat_id: str, assistant_id: str, expected: str
) -> str:
    # 0.12.x overlays partial text while streaming: wait for the full answer.
    deadline = time.monotonic() + 60
    content = ""
    while time.monotonic() < deadline:
        chat = (await client.get(f"/api/v1/chats/{chat_id}")).json()["chat"]
        content = chat["history"]["messages"].get(assistant_id, {}).get("content", "")
        if content == expected:
            return content
        await asyncio.sleep(0.3)
    raise AssertionError(f"assistant content {content!r} != {expected!r}")
