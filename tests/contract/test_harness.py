"""Harness self-tests: the suite's own guards, the fake model server alone, then
end to end through each real Open WebUI version."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.config import load_settings
from tests.harness.env import clean_env
from tests.harness.model_server import (
    IMAGE_PNG,
    TITLE,
    Directives,
    ModelServer,
    RemoteModelServer,
    ThreadedModelServer,
    expected_reasoning,
    expected_reply,
    parse_directives,
    reply_text,
)
from tests.harness.openwebui import VERSIONS, RunningOpenWebUI, server_env

REPO = Path(__file__).resolve().parents[2]

# -- the suite's own guards ---------------------------------------------------


def test_user_settings_never_reach_the_tests() -> None:
    """`make test` after the README's `export OPENWEBUI_URL=…` still talks only to
    the test servers: tests/conftest.py removed the user's settings at import."""
    leaked = [
        n for n in os.environ if n.startswith(("OPENWEBUI_", "BRIDGE_", "SLACK_", "DISCORD_"))
    ]
    assert leaked == []
    settings = load_settings()
    assert settings.openwebui_url == "http://localhost:8080"
    assert not settings.has_credentials


def run_pytest(tmp_path: Path, test_source: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run pytest on one small test file with the repository's tests/conftest.py
    loaded as a plugin (the file lives outside the tree, so a concurrent run of
    the suite never collects it)."""
    test_file = tmp_path / f"test_tmp_{uuid.uuid4().hex[:8]}.py"
    test_file.write_text(test_source)
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "OWUI_VERSIONS")}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["-c", str(REPO / "pyproject.toml"), "--rootdir", str(tmp_path)]
    return subprocess.run(
        [*command, "-p", "tests.conftest", str(test_file)],
        cwd=tmp_path,
        env=base | {"PYTHONPATH": str(REPO)} | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_exported_settings_are_removed_before_tests_run(tmp_path: Path) -> None:
    source = (
        "from bridge.config import load_settings\n"
        "def test_url():\n"
        "    assert load_settings().openwebui_url == 'http://localhost:8080'\n"
    )
    result = run_pytest(
        tmp_path,
        source,
        OPENWEBUI_URL="https://users-own-owui.example",
        OPENWEBUI_API_KEY="sk-users-own",
        BRIDGE_DATABASE="/tmp/users-own.db",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_refuses_a_version_selection(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "def test_ok():\n    pass\n", CI="true", OWUI_VERSIONS="")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "OWUI_VERSIONS" in result.stderr


def test_ci_fails_a_session_without_real_server_tests(tmp_path: Path) -> None:
    source = "def test_ok():\n    pass\n"
    assert run_pytest(tmp_path, source).returncode == 0
    result = run_pytest(tmp_path, source, CI="true")
    assert result.returncode == 1, result.stdout + result.stderr
    for version in VERSIONS:
        assert f"no real-server test passed against Open WebUI {version}" in result.stdout


def test_ci_fails_a_run_that_left_tests_out(tmp_path: Path) -> None:
    source = (
        "import pytest\n"
        "def test_ok():\n    pass\n"
        "def test_other():\n    pass\n"
        "def test_skipped():\n    pytest.skip('not today')\n"
    )
    outside = run_pytest(tmp_path, source, PYTEST_ADDOPTS="-k 'not other'")
    assert outside.returncode == 0, outside.stdout + outside.stderr
    assert "skipped 1: " in outside.stdout and "test_skipped" in outside.stdout
    result = run_pytest(tmp_path, source, CI="true", PYTEST_ADDOPTS="-k 'not other'")
    assert result.returncode == 1, result.stdout + result.stderr
    for reason in (
        "was run, not the whole suite",
        "PYTEST_ADDOPTS is set",
        "1 test(s) deselected",
        "1 test(s) skipped",
    ):
        assert "CI=true: " in result.stdout and reason in result.stdout, result.stdout


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

            tagged, _ = await _stream_text(client, url, "why? [[think=0]] [[think_tags]]")
            assert tagged == (
                f"<think>{expected_reasoning('why? [[think]]')}</think>\n{expected_reply('why?')}"
            )

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
            assert kinds.count("task") == 1 and kinds.count("chat") == 6
            await client.delete(f"{server.base_url}/_requests")
            assert (await client.get(f"{server.base_url}/_requests")).json() == []
    finally:
        await server.stop()


async def test_model_server_thinks_before_answering() -> None:
    """[[think=S]]: reasoning_content pieces over S seconds, then the plain answer."""
    server = ModelServer()
    await server.start()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            url = f"{server.url}/chat/completions"
            body = _chat_body("deep question [[think=1]]", stream=True)
            reasoning, content, first_answer_at = "", "", 0.0
            started = time.monotonic()
            async with client.stream("POST", url, json=body) as resp:
                async for line in resp.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    delta = json.loads(line[6:])["choices"][0]["delta"]
                    reasoning += delta.get("reasoning_content") or ""
                    if delta.get("content") and not first_answer_at:
                        first_answer_at = time.monotonic() - started
                        assert reasoning == expected_reasoning("deep question [[think=1]]")
                    content += delta.get("content") or ""
            assert content == expected_reply("deep question [[think=1]]")
            assert content == expected_reply("deep question")  # the text does not change
            assert 1.0 <= first_answer_at < 3.0
            assert expected_reasoning("deep question") is None
    finally:
        await server.stop()


def test_chat_requests_are_the_messages_sent() -> None:
    handle = ModelServer.run_in_thread()
    try:
        url = f"{handle.url}/chat/completions"
        history = [
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "q2"},
        ]
        task = [{"role": "user", "content": '### Task:\nJSON format: { "title": "..." }'}]
        for messages in (history[:1], task, history):
            body = {"model": "fake-model", "stream": False, "messages": messages}
            httpx.post(url, json=body, timeout=10).raise_for_status()
        assert handle.chat_requests() == [history[:1], history]
        assert RemoteModelServer(handle.url).chat_requests() == [history[:1], history]
    finally:
        handle.stop()


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


def test_processes_the_tests_start_never_see_the_developers_services(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    poison = {
        "DATABASE_URL": "postgresql://me:secret@db.internal/openwebui",
        "OPENAI_API_BASE_URLS": "https://api.openai.com/v1",
        "OPENAI_API_KEYS": "sk-mine",
        "REDIS_URL": "redis://cache.internal:6379",
        "VECTOR_DB": "qdrant",
        "S3_BUCKET_NAME": "mine",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "OPENWEBUI_URL": "https://my-own-openwebui",
        "SLACK_BOT_TOKEN": "xoxb-mine",
    }
    for name, value in poison.items():
        monkeypatch.setenv(name, value)
    server = server_env("0.12.4", "http://127.0.0.1:1/v1", tmp_path)
    bridge = clean_env()
    for env in (server, bridge):
        assert not set(poison) & set(env), set(poison) & set(env)
        assert "127.0.0.1" in env["NO_PROXY"] and "localhost" in env["no_proxy"]
        assert env["PATH"] == os.environ["PATH"]
    assert server["OPENAI_API_BASE_URL"] == "http://127.0.0.1:1/v1"
    assert server["DATA_DIR"] == str(tmp_path)


async def test_model_server_cites_sources_and_draws_images() -> None:
    server = ModelServer()
    await server.start()
    rag = (
        "### Task:\nRespond to the user query using the provided context.\n<context>\n"
        '<source id="1" name="b">Water is dry.</source>\n'
        '<source id="2" name="a">The sky is teal.</source>\n</context>\n\nWhat? [[cite]]'
    )
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            url = f"{server.url}/chat/completions"
            # Not taken for a background task: answered, each source cited by its number.
            cited, _ = await _stream_text(client, url, rag)
            assert cited == f"{expected_reply('What?')} Water is dry [1]. The sky is teal [2]."
            drawn = await client.post(f"{server.url}/images/generations", json={"prompt": "x"})
            assert base64.b64decode(drawn.json()["data"][0]["b64_json"]) == IMAGE_PNG
    finally:
        await server.stop()
