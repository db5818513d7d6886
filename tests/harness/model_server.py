"""Deterministic OpenAI-compatible model server for tests.

Open WebUI is pointed at this server (``OPENAI_API_BASE_URL``). Tests steer it
through directives embedded in the last user message, e.g.
``"hello [[words=50]] [[delay=0.1]]"``, so they need no side channel: the
directive travels through Open WebUI like any user text.

Directives (all optional):

``[[words=N]]``   reply length in filler words (default 12)
``[[chars=N]]``   reply of exactly N characters (overrides words)
``[[delay=S]]``   seconds between streamed chunks (default 0.01)
``[[first=S]]``   seconds before the first chunk (default 0)
``[[fail=CODE]]`` answer HTTP CODE with an OpenAI-style error body
``[[hang]]``      send nothing, keep the connection open until the client leaves
``[[stall]]``     send a few chunks, then hang
``[[code]]``      include a fenced code block in the reply
``[[think]]``     reason first: stream ``reasoning_text`` as ``delta.reasoning_content``
                  over 1 s, then the answer; ``[[think=S]]`` over S seconds
``[[cite]]``      when Open WebUI put sources into the prompt (``<source id="n">``
                  tags), end the reply with one sentence per source, cited with its
                  marker as the RAG template asks: ``The sky is teal [1].``
``[[think_tags]]`` with ``[[think]]``: send the reasoning inside the content as
                  ``<think>…</think>`` instead (what many local models do)

Open WebUI parses both reasoning forms (0.6.15 and 0.12.4) and times the
reasoning from its first to its last piece, so a ``[[think=S]]`` answer is
stored as having thought for S seconds. What it stores differs by version:

- 0.6.x writes it into ``content``:
  ``<details type="reasoning" done="true" duration="S">…</details>`` then the
  answer, so ``content`` is *not* ``expected_reply(question)``; it ends with it,
  and ``bridge.display.visible_text(content, "hide") == expected_reply(question)``.
- 0.12.x keeps the reasoning as an ``output`` item of type "reasoning";
  ``content`` is ``expected_reply(question)``.

``expected_reply`` is always the answer alone, reasoning left out;
``expected_reasoning`` is the reasoning text.

``POST /v1/images/generations`` (image generation pointed here) answers ``IMAGE_PNG``
as ``b64_json``.

Every request is recorded (``recorded()``); ``chat_requests()`` gives the
``messages`` each chat completion (background tasks left out) carried.

Open WebUI's background tasks (title, tags, follow-ups, queries) are answered
instantly with harmless JSON, whatever directives the chat history contains.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import struct
import threading
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

MODEL_IDS = ("fake-model", "fake-model-2")
TITLE = "Fake chat title"
DEFAULT_WORDS = 12
DEFAULT_DELAY = 0.01
WORDS_PER_CHUNK = 3
STALL_CHUNKS = 3
DEFAULT_THINK = 1.0


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A small solid-colour PNG (what ``/v1/images/generations`` returns)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


IMAGE_PNG = _png(8, 8, (0, 128, 128))

_DIRECTIVE = re.compile(r"\[\[(\w+)(?:=([^\]]*))?\]\]")


@dataclass(frozen=True)
class Directives:
    words: int = DEFAULT_WORDS
    chars: int | None = None
    delay: float = DEFAULT_DELAY
    first: float = 0.0
    fail: int | None = None
    hang: bool = False
    stall: bool = False
    code: bool = False
    think: float | None = None  # seconds of reasoning before the answer
    think_tags: bool = False
    cite: bool = False


def parse_directives(text: str) -> tuple[Directives, str]:
    """Return the directives in ``text`` and the text with them removed."""
    values: dict[str, Any] = {}
    for name, raw in _DIRECTIVE.findall(text):
        if name in ("words", "chars", "fail"):
            values[name] = int(raw)
        elif name in ("delay", "first"):
            values[name] = float(raw)
        elif name in ("hang", "stall", "code", "think_tags", "cite"):
            values[name] = True
        elif name == "think":
            values[name] = float(raw) if raw else DEFAULT_THINK
    clean = " ".join(_DIRECTIVE.sub(" ", text).split())
    return Directives(**values), clean


def reply_text(question: str, d: Directives) -> str:
    """Deterministic answer: recognisable prefix + numbered filler words."""
    head = f'Answer to "{question[:40]}":'
    if d.code:
        head += "\n\n```python\nprint('hello from fake-model')\n```\n\n```\nplain block\n```\n"
    if d.chars is not None:
        # Pad with filler words, then cut to exactly N characters.
        text = head
        i = 1
        while len(text) < d.chars:
            text += f" w{i}"
            i += 1
        return text[: d.chars]
    return head + "".join(f" w{i}" for i in range(1, d.words + 1))


def reasoning_text(question: str) -> str:
    """What the model "thinks" before answering (``[[think]]``)."""
    return f'Thinking about "{question[:40]}":' + "".join(f" r{i}" for i in range(1, 7))


def expected_reply(question: str) -> str:
    """The answer this server gives to ``question`` (directives included), without
    any reasoning (see the module docstring for what Open WebUI stores)."""
    directives, clean = parse_directives(question)
    return reply_text(clean.strip(), directives)


def expected_reasoning(question: str) -> str | None:
    """The reasoning sent before the answer to ``question``, or None."""
    directives, clean = parse_directives(question)
    return reasoning_text(clean.strip()) if directives.think is not None else None


def chat_messages(recorded: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The ``messages`` of each chat completion in ``recorded``, in order;
    Open WebUI's background tasks (titles, tags…) left out."""
    return [list(r["body"].get("messages") or []) for r in recorded if r["kind"] == "chat"]


# Content up to its closing tag, never across another opening one (the RAG template's
# instructions show a bare ``<source id="1">`` before the real tags).
_SOURCE_TAG = re.compile(r'<source id="(\d+)"[^>]*>((?:(?!<source\b).)*?)</source>', re.S)


def source_tags(body: dict[str, Any]) -> list[tuple[int, str]]:
    """The ``<source id="n">`` tags Open WebUI put into a chat's messages, in order."""
    text = "\n".join(_content_text(m.get("content")) for m in body.get("messages") or [])
    return [(int(n), content.strip()) for n, content in _SOURCE_TAG.findall(text)]


def citations(sources: list[tuple[int, str]]) -> str:
    """One sentence per source, with its marker (``[[cite]]``)."""
    return "".join(f" {content.rstrip('.')} [{n}]." for n, content in sources if content)


def rag_question(prompt: str) -> str:
    """The question of a prompt Open WebUI wrapped in its RAG template (it starts with
    "### Task:" like a background task, and ends with the question after the context)."""
    question = prompt.rsplit("</context>", 1)[-1]
    return question.replace("<user_query>", "").replace("</user_query>", "").strip()


def task_reply(prompt: str) -> str | None:
    """Answer for Open WebUI background-task prompts; None for normal chat."""
    if not prompt.lstrip().startswith("### Task:"):
        return None
    if '"title"' in prompt:
        return json.dumps({"title": TITLE})
    if '"tags"' in prompt:
        return json.dumps({"tags": ["Testing"]})
    if '"follow_ups"' in prompt:
        return json.dumps({"follow_ups": ["Tell me more?"]})
    if '"queries"' in prompt:
        return json.dumps({"queries": []})
    return "{}"


def _content_text(content: Any) -> str:
    # OpenAI messages may carry a list of parts (text + images).
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def last_user_text(body: dict[str, Any]) -> str:
    for msg in reversed(body.get("messages") or []):
        if msg.get("role") == "user":
            return _content_text(msg.get("content"))
    return ""


def chunk_text(text: str, words_per_chunk: int = WORDS_PER_CHUNK) -> list[str]:
    """Split into chunks of a few words; joining them gives ``text`` back."""
    parts = re.findall(r"\S+\s*|\s+", text)
    return [
        "".join(parts[i : i + words_per_chunk]) for i in range(0, len(parts), words_per_chunk)
    ] or [""]


@dataclass
class RecordedRequest:
    path: str
    method: str
    body: Any
    timestamp: float
    kind: str  # "models", "chat", "task"


@dataclass
class ModelServer:
    """aiohttp server; start/stop on the current loop or use ``run_in_thread``."""

    requests: list[RecordedRequest] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _port: int = 0
    _host: str = "127.0.0.1"
    _counter: int = 0

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def url(self) -> str:
        """OpenAI base URL, as Open WebUI wants it (ends in /v1)."""
        return f"{self.base_url}/v1"

    def make_app(self) -> web.Application:
        # Requests carrying images or whole documents exceed aiohttp's 1 MiB default.
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/images/generations", self._images)
        app.router.add_get("/_requests", self._get_requests)
        app.router.add_delete("/_requests", self._clear_requests)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        # Short shutdown_timeout: hung/stalled handlers would hold stop() for 60 s.
        self._runner = web.AppRunner(self.make_app(), handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self._host = host
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @classmethod
    def run_in_thread(cls, host: str = "127.0.0.1", port: int = 0) -> ThreadedModelServer:
        """Run on its own loop in a daemon thread, so a blocked test loop
        (or a synchronous fixture) never stalls Open WebUI's upstream calls."""
        return ThreadedModelServer.start(cls(), host, port)

    # -- handlers ---------------------------------------------------------

    def _record(self, request: web.Request, body: Any, kind: str) -> None:
        self.requests.append(RecordedRequest(request.path, request.method, body, time.time(), kind))

    async def _models(self, request: web.Request) -> web.Response:
        self._record(request, None, "models")
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "tests"} for m in MODEL_IDS]
        return web.json_response({"object": "list", "data": data})

    async def _get_requests(self, request: web.Request) -> web.Response:
        return web.json_response([r.__dict__ for r in self.requests])

    async def _clear_requests(self, request: web.Request) -> web.Response:
        self.requests.clear()
        return web.json_response({"status": True})

    async def _images(self, request: web.Request) -> web.Response:
        """OpenAI image generation: ``n`` copies of ``IMAGE_PNG`` as ``b64_json``."""
        body = await request.json()
        self._record(request, body, "image")
        count = max(1, int(body.get("n") or 1))
        encoded = base64.b64encode(IMAGE_PNG).decode()
        data = [{"b64_json": encoded, "revised_prompt": body.get("prompt", "")}] * count
        return web.json_response({"created": int(time.time()), "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        prompt = last_user_text(body)
        sources = source_tags(body)
        if "</context>" in prompt and sources:
            prompt = rag_question(prompt)  # a chat with sources, not a background task
        task = task_reply(prompt)
        self._record(request, body, "task" if task is not None else "chat")
        model = str(body.get("model") or MODEL_IDS[0])
        stream = bool(body.get("stream"))
        if task is not None:
            return await self._respond(request, model, stream, task, Directives(delay=0))

        d, question = parse_directives(prompt)
        if d.fail is not None:
            return _error(d.fail)
        if d.hang:
            await _wait_for_disconnect(request)
            return web.Response(status=499)
        thoughts = reasoning_text(question) if d.think is not None else None
        text = reply_text(question, d) + (citations(sources) if d.cite else "")
        return await self._respond(request, model, stream, text, d, thoughts)

    async def _respond(
        self,
        request: web.Request,
        model: str,
        stream: bool,
        text: str,
        d: Directives,
        thoughts: str | None = None,
    ) -> web.StreamResponse:
        self._counter += 1
        cid = f"chatcmpl-fake-{self._counter}"
        if not stream:
            if d.first:
                await asyncio.sleep(d.first)
            if thoughts is not None and d.think:
                await asyncio.sleep(d.think)
            return web.json_response(_completion(cid, model, text, thoughts, d.think_tags))

        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        try:
            async for payload in _sse_events(cid, model, text, d, thoughts):
                await resp.write(payload)
            if d.stall:
                await _wait_for_disconnect(request)
                return resp
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            # Client went away (e.g. Open WebUI cancelled the task): that is fine.
            pass
        return resp


async def _sse_events(
    cid: str, model: str, text: str, d: Directives, thoughts: str | None = None
) -> AsyncIterator[bytes]:
    chunks = chunk_text(text)
    if d.stall:
        chunks = chunks[:STALL_CHUNKS]
    if d.first:
        await asyncio.sleep(d.first)
    yield _sse(_chunk(cid, model, {"role": "assistant", "content": ""}, None))
    if thoughts is not None:
        async for payload in _reasoning_events(cid, model, thoughts, d):
            yield payload
    for i, piece in enumerate(chunks):
        if i and d.delay:
            await asyncio.sleep(d.delay)
        yield _sse(_chunk(cid, model, {"content": piece}, None))
    if not d.stall:
        yield _sse(_chunk(cid, model, {}, "stop", usage=_usage(text)))


async def _reasoning_events(
    cid: str, model: str, thoughts: str, d: Directives
) -> AsyncIterator[bytes]:
    """Reasoning spread evenly over ``d.think`` seconds, as Open WebUI times it."""
    seconds = d.think or 0.0
    if d.think_tags:
        # Timed from the opening tag to the closing one.
        pieces = ["<think>", *chunk_text(thoughts), "</think>\n"]
        for i, piece in enumerate(pieces):
            if i:
                await asyncio.sleep(seconds / (len(pieces) - 1))
            yield _sse(_chunk(cid, model, {"content": piece}, None))
        return
    # Timed from the first reasoning piece to the first answer piece.
    pieces = chunk_text(thoughts)
    for piece in pieces:
        yield _sse(_chunk(cid, model, {"reasoning_content": piece}, None))
        await asyncio.sleep(seconds / len(pieces))


def _sse(obj: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


def _usage(text: str) -> dict[str, int]:
    n = len(text.split())
    return {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}


def _chunk(
    cid: str,
    model: str,
    delta: dict[str, Any],
    finish: str | None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        out["usage"] = usage
    return out


def _completion(
    cid: str, model: str, text: str, thoughts: str | None = None, tags: bool = False
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if thoughts is not None and tags:
        message["content"] = f"<think>{thoughts}</think>\n{text}"
    elif thoughts is not None:
        message["reasoning_content"] = thoughts
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(text),
    }


def _error(code: int) -> web.Response:
    body = {
        "error": {
            "message": f"Fake upstream failure (HTTP {code})",
            "type": "server_error" if code >= 500 else "invalid_request_error",
            "code": code,
        }
    }
    return web.json_response(body, status=code)


async def _wait_for_disconnect(request: web.Request) -> None:
    # aiohttp >= 3.9 no longer cancels handlers when the client disconnects
    # (handler_cancellation defaults to off), and offers no disconnect event:
    # polling the transport is the supported way to notice.
    while request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(0.2)


@dataclass
class ThreadedModelServer:
    """Handle for a ModelServer running in its own thread and event loop."""

    server: ModelServer
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def recorded(self) -> list[dict[str, Any]]:
        """Requests seen so far, as plain dicts (same shape as GET /_requests)."""
        return [r.__dict__.copy() for r in list(self.server.requests)]

    def chat_requests(self) -> list[list[dict[str, Any]]]:
        """The ``messages`` of each chat completion so far, in order (no tasks)."""
        return chat_messages(self.recorded())

    def clear_requests(self) -> None:
        self.server.requests.clear()  # list.clear is atomic under the GIL

    @classmethod
    def start(cls, server: ModelServer, host: str, port: int) -> ThreadedModelServer:
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(server.start(host, port))
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=run, name="fake-model-server", daemon=True)
        thread.start()
        if not ready.wait(30) or errors:
            raise RuntimeError(f"model server failed to start: {errors}")
        return cls(server, loop, thread)

    def stop(self) -> None:
        if not self.loop.is_running():
            return
        fut = asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop)
        try:
            fut.result(timeout=10)
        except Exception:
            pass  # best effort: the thread is a daemon anyway
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@dataclass
class RemoteModelServer:
    """Same interface as ThreadedModelServer for a server in another process
    (e.g. started by ``python -m tests.harness serve``)."""

    url: str  # the /v1 base URL

    @property
    def base_url(self) -> str:
        return self.url.removesuffix("/").removesuffix("/v1")

    def recorded(self) -> list[dict[str, Any]]:
        resp = httpx.get(f"{self.base_url}/_requests", timeout=10)
        resp.raise_for_status()
        return list(resp.json())

    def chat_requests(self) -> list[list[dict[str, Any]]]:
        """The ``messages`` of each chat completion so far, in order (no tasks)."""
        return chat_messages(self.recorded())

    def clear_requests(self) -> None:
        httpx.delete(f"{self.base_url}/_requests", timeout=10).raise_for_status()

    def stop(self) -> None:
        pass  # not ours to stop
