"""A local Open WebUI 0.12.x stand-in for load benchmarks: a real HTTP + Socket.IO
server the real ``OpenWebUIClient`` and ``LiveEvents`` connect to over TCP.

It speaks what the bridge uses on 0.12.x (server-managed turns): ``/api/version``,
``/api/models``, ``/api/chat/completions`` with ``user_message`` + ``parent_id``,
``/api/v1/chats/{id}`` (GET/POST), ``/api/v1/chats/new``, task listing and stop,
folders, tags and the message status event of filing. Answers are streamed as a
real 0.12.4 streams them (recorded from one): ``chat:list``, ``chat:active``,
``chat:title``, one ``response:completion`` ``response.output_text.delta`` event per
token at ``rate`` tokens a second, usage, ``chat:completion`` with ``done`` and the
whole ``output``, ``chat:active`` false; each on the ``events`` Socket.IO event to
the room of the signed-in user. A GET of the chat while the answer runs holds the
text so far, as 0.12.x's does.

Unlike Open WebUI on two cores it costs little CPU, so a benchmark's figures are the
bridge's. Everything is kept in memory; nothing is checked beyond what the bridge
relies on. Unknown routes answer 404 and are counted in ``unknown``.
"""

from __future__ import annotations

import asyncio
import base64
import heapq
import itertools
import json
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import socketio
from aiohttp import web

VERSION = "0.12.4"
MODEL = "bench-model"
USER_ID = "bench-user"
ROOM = f"user:{USER_ID}"
TAG = re.compile(r"bench question (\w+)")  # how bench.load names its questions
TICK = 0.005  # seconds between two looks at which tokens are due

WORDS = (
    "the bridge streams each answer into its thread while the model writes it and "
    "keeps one chat per thread so an admin can read exactly what was said"
).split()

JSON = dict[str, Any]


def bench_jwt() -> str:
    """A JWT-shaped token without ``exp``: the bridge then follows answers by live events."""

    def part(value: JSON) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'id': USER_ID})}.c2lnbmF0dXJl"


def answer_tokens(count: int, seed: int = 0) -> list[str]:
    """``count`` tokens of plain prose, a paragraph break every 40 tokens."""
    tokens = []
    for n in range(count):
        word = WORDS[(n + seed) % len(WORDS)]
        tokens.append(word + ("\n\n" if n % 40 == 39 else " "))
    return tokens


@dataclass
class Answer:
    chat_id: str
    message_id: str
    user_id: str
    task_id: str
    tokens: list[str]
    title: str | None
    started: float
    sent: int = 0
    parts: list[str] = field(default_factory=list)
    item_id: str = field(default_factory=lambda: f"msg_{uuid.uuid4().hex[:24]}")
    tag: str = ""  # the benchmark's name for the question, when it has one

    @property
    def text(self) -> str:
        return "".join(self.parts)


class StandIn:
    def __init__(self, *, tokens: int = 200, rate: float = 20.0, version: str = VERSION) -> None:
        self.tokens = tokens
        self.rate = rate
        self.version = version
        self.chats: dict[str, JSON] = {}
        self.tasks: dict[str, list[str]] = {}  # chat id -> running task ids
        self.answers: dict[str, Answer] = {}  # running, by assistant message id
        self.requests: Counter[str] = Counter()
        self.unknown: Counter[str] = Counter()
        self.tokens_sent = 0
        self.answers_started = 0
        self.answers_finished = 0
        self.finished_texts: dict[str, str] = {}  # assistant message id -> final text
        self.durations: list[float] = []  # seconds from completion request to last token
        self.finished_at: dict[str, float] = {}  # question tag ("q0001") -> monotonic time
        self._due: list[tuple[float, int, str]] = []  # (when, tiebreak, message id)
        self._order = itertools.count()
        self._folders: dict[str, JSON] = {}
        self._tags: dict[str, list[JSON]] = {}
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp", logger=False, engineio_logger=False, cors_allowed_origins="*"
        )
        self.sio.on("connect", self._on_connect)
        self.sio.on("user-join", self._on_user_join)
        self.sio.on("disconnect", self._on_disconnect)
        self._sockets: dict[str, str] = {}  # Socket.IO sid -> Engine.IO sid, signed in
        self.app = web.Application(client_max_size=8 * 1024 * 1024)
        self.sio.attach(self.app, socketio_path="/ws/socket.io")
        self.app.router.add_route("*", "/api/{tail:.*}", self._api)
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.url = ""

    # -- lifecycle ------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=2048)  # uvicorn's default
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        self.url = f"http://{host}:{sockets[0].getsockname()[1]}"
        self._ticker = asyncio.create_task(self._tick())
        return self.url

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> StandIn:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> int:
        return len(self.answers)

    # -- Socket.IO ----------------------------------------------------------------

    async def _on_connect(self, sid: str, environ: Any, auth: Any = None) -> bool:
        if not isinstance(auth, dict) or not auth.get("token"):
            return False  # 0.12.x accepts JWTs only
        await self.sio.enter_room(sid, ROOM)
        self._sockets[sid] = self.sio.manager.eio_sid_from_sid(sid, "/")
        return True

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        self._sockets.pop(sid, None)

    async def _on_user_join(self, sid: str, data: Any = None) -> JSON:
        return {"id": USER_ID}

    async def _emit(self, answer: Answer, event: JSON, message_id: str | None = None) -> None:
        """``sio.emit("events", …, room=ROOM)``, encoded here: the same frame on the wire
        (a Socket.IO EVENT packet in an Engine.IO message), at a fraction of the
        generic path's CPU, which at 10,000 events a second would be the bottleneck."""
        envelope = {
            "chat_id": answer.chat_id,
            "message_id": message_id or answer.message_id,
            "data": event,
        }
        frame = "2" + json.dumps(["events", envelope], separators=(",", ":"))
        for eio_sid in list(self._sockets.values()):
            await self.sio.eio.send(eio_sid, frame)

    # -- streaming ------------------------------------------------------------------

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            while self._due and self._due[0][0] <= now:
                _, _, message_id = heapq.heappop(self._due)
                answer = self.answers.get(message_id)
                if answer is not None:
                    await self._step(answer)

    async def _step(self, answer: Answer) -> None:
        if answer.sent < len(answer.tokens):
            token = answer.tokens[answer.sent]
            answer.sent += 1
            answer.parts.append(token)
            self.tokens_sent += 1
            await self._emit(
                answer,
                {
                    "type": "response:completion",
                    "data": {
                        "type": "response.output_text.delta",
                        "item_id": answer.item_id,
                        "output_index": 0,
                        "content_index": 0,
                        "delta": token,
                    },
                },
            )
            when = answer.started + (answer.sent + 1) / self.rate
            heapq.heappush(self._due, (when, next(self._order), answer.message_id))
            return
        await self._finish(answer)

    async def _begin(self, answer: Answer) -> None:
        chat = self._chat_data(answer.chat_id)
        await self._emit(
            answer,
            {"type": "chat:list", "data": {"chat_id": answer.chat_id, "folder_id": None}},
            answer.user_id,
        )
        await self._emit(answer, {"type": "chat:active", "data": {"active": True}})
        if answer.title is not None:
            chat["title"] = answer.title
            self.chats[answer.chat_id]["title"] = answer.title
            await self._emit(answer, {"type": "chat:title", "data": answer.title})
        await self._emit(
            answer,
            {
                "type": "response:completion",
                "data": {
                    "id": f"chatcmpl-{answer.task_id[:8]}",
                    "object": "chat.completion.chunk",
                    "model": MODEL,
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
                },
            },
        )
        heapq.heappush(
            self._due, (answer.started + 1 / self.rate, next(self._order), answer.message_id)
        )

    async def _finish(self, answer: Answer) -> None:
        text = answer.text
        output = [
            {
                "type": "message",
                "id": answer.item_id,
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text}],
            }
        ]
        usage = {"prompt_tokens": 1, "completion_tokens": len(answer.tokens)}
        message = self._message(answer.chat_id, answer.message_id)
        message.update(content=text, output=output, done=True, usage=usage)
        self._end(answer)
        self.answers_finished += 1
        self.finished_texts[answer.message_id] = text
        self.durations.append(time.monotonic() - answer.started)
        if answer.tag:
            self.finished_at[answer.tag] = time.monotonic()
        await self._emit(answer, {"type": "chat:completion", "data": {"usage": usage}})
        await self._emit(
            answer,
            {
                "type": "chat:completion",
                "data": {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            },
        )
        await self._emit(
            answer,
            {"type": "chat:list", "data": {"chat_id": answer.chat_id, "folder_id": None}},
        )
        done: JSON = {"done": True, "output": output, "usage": usage}
        if answer.title is not None:
            done["title"] = answer.title
        await self._emit(answer, {"type": "chat:completion", "data": done})
        await self._emit(answer, {"type": "chat:active", "data": {"active": False}})

    def _end(self, answer: Answer) -> None:
        self.answers.pop(answer.message_id, None)
        running = self.tasks.get(answer.chat_id, [])
        if answer.task_id in running:
            running.remove(answer.task_id)

    # -- HTTP -------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        path = request.path
        method = request.method
        body: Any = await request.json() if request.can_read_body else None
        parts = path.strip("/").split("/")
        route = self._route(method, parts)
        self.requests[route] += 1
        if route == "GET version":
            return web.json_response({"version": self.version})
        if route == "GET models":
            return web.json_response({"data": [{"id": MODEL, "name": MODEL, "object": "model"}]})
        if route == "POST signin":
            return web.json_response({"token": bench_jwt(), "id": USER_ID})
        if route == "POST completion":
            return self._completion(body)
        if route == "POST new chat":
            chat_id = str(uuid.uuid4())
            self.chats[chat_id] = {"id": chat_id, "user_id": USER_ID, "chat": body["chat"]}
            return web.json_response(self.chats[chat_id])
        if route in ("GET chat", "POST chat"):
            return self._chat(method, parts[3], body)
        if route == "GET tasks":
            return web.json_response({"task_ids": list(self.tasks.get(parts[3], []))})
        if route == "POST stop chat":
            for task_id in list(self.tasks.get(parts[3], [])):
                self._stop_task(task_id)
            return web.json_response({"status": True})
        if route == "POST stop task":
            self._stop_task(parts[3])
            return web.json_response({"status": True})
        if route == "POST folder":
            name = str(body["name"])
            if any(f["name"].casefold() == name.casefold() for f in self._folders.values()):
                return web.json_response({"detail": "Folder already exists"}, status=400)
            folder = {"id": str(uuid.uuid4()), "name": name, "parent_id": None}
            self._folders[folder["id"]] = folder
            return web.json_response(folder)
        if route == "GET folders":
            return web.json_response(list(self._folders.values()))
        if route == "GET one folder":
            if parts[3] not in self._folders:
                return web.json_response({"detail": "Not Found"}, status=404)
            return web.json_response(self._folders[parts[3]])
        if route == "POST file chat":
            if parts[3] in self.chats:
                self.chats[parts[3]]["folder_id"] = (body or {}).get("folder_id")
            return web.json_response({"status": True})
        if route == "POST tag":
            tags = self._tags.setdefault(parts[3], [])
            name = str(body["name"])
            if all(t["name"] != name for t in tags):
                tags.append({"id": name.lower().replace(" ", "_"), "name": name})
            return web.json_response(tags)
        if route == "GET tags":
            return web.json_response(self._tags.get(parts[3], []))
        if route == "POST message event":
            return web.json_response(True)
        self.unknown[f"{method} {path}"] += 1
        return web.json_response({"detail": "Not Found"}, status=404)

    @staticmethod
    def _route(method: str, parts: list[str]) -> str:
        """A short name for the request's route (parts: the path without ``/``)."""
        tail = parts[1:]
        named = {
            ("GET", ("version",)): "version",
            ("GET", ("models",)): "models",
            ("POST", ("v1", "auths", "signin")): "signin",
            ("POST", ("chat", "completions")): "completion",
            ("POST", ("v1", "chats", "new")): "new chat",
            ("POST", ("v1", "folders")): "folder",
            ("GET", ("v1", "folders")): "folders",
        }
        name = named.get((method, tuple(tail)))
        if name is None and tail[:2] == ["v1", "chats"]:
            rest = tail[2:]
            if len(rest) == 1:
                name = "chat"
            elif len(rest) == 2 and rest[1] == "folder":
                name = "file chat"
            elif len(rest) == 2 and rest[1] == "tags":
                name = "tag" if method == "POST" else "tags"
            elif len(rest) == 4 and rest[1] == "messages" and rest[3] == "event":
                name = "message event"
        elif name is None and tail[:2] == ["v1", "folders"] and len(tail) == 3:
            name = "one folder" if method == "GET" else None
        elif name is None and tail[:2] == ["tasks", "chat"]:
            name = "stop chat" if tail[3:] == ["stop"] else "tasks"
        elif name is None and tail[:2] == ["tasks", "stop"]:
            name = "stop task"
        return f"{method} {name or '/'.join(tail)}"

    def _completion(self, body: JSON) -> web.Response:
        if body.get("model") != MODEL:
            return web.json_response({"detail": "Model not found"}, status=400)
        user, answer_id = body["user_message"], str(body["id"])
        parent_id = body.get("parent_id")
        chat_id = body.get("chat_id") or str(uuid.uuid4())
        new = chat_id not in self.chats
        if new:
            history: JSON = {"currentId": None, "messages": {}}
            self.chats[chat_id] = {
                "id": chat_id,
                "user_id": USER_ID,
                "title": "New Chat",
                "chat": {"title": "New Chat", "models": [MODEL], "history": history},
            }
        messages = self._chat_data(chat_id)["history"]["messages"]
        if parent_id is not None and parent_id not in messages:
            return web.json_response({"detail": f"parent {parent_id} not in chat"}, status=400)
        if parent_id is not None:
            messages[parent_id].setdefault("childrenIds", []).append(user["id"])
        messages[user["id"]] = {**user, "parentId": parent_id, "childrenIds": [answer_id]}
        messages[answer_id] = {
            "id": answer_id,
            "parentId": user["id"],
            "childrenIds": [],
            "role": "assistant",
            "content": "",
            "model": MODEL,
            "done": False,
        }
        self._chat_data(chat_id)["history"]["currentId"] = answer_id
        task_id = str(uuid.uuid4())
        self.tasks.setdefault(chat_id, []).append(task_id)
        titled = new and bool((body.get("background_tasks") or {}).get("title_generation"))
        answer = Answer(
            chat_id,
            answer_id,
            str(user["id"]),
            task_id,
            answer_tokens(self.tokens, self.answers_started),
            str(user.get("content", ""))[:40] if titled else None,
            time.monotonic(),
        )
        tag = TAG.search(str(user.get("content", "")))
        answer.tag = tag.group(1) if tag else ""
        self.answers[answer_id] = answer
        self.answers_started += 1
        asyncio.get_running_loop().create_task(self._begin(answer))
        return web.json_response({"status": True, "task_ids": [task_id], "chat_id": chat_id})

    def _chat(self, method: str, chat_id: str, body: Any) -> web.Response:
        stored = self.chats.get(chat_id)
        if stored is None:
            detail = "We could not find what you are looking for :/"
            return web.json_response({"detail": detail}, status=401)
        if method == "POST":
            update = dict(body["chat"])
            history = update.pop("history", None)
            stored["chat"].update(update)
            if isinstance(history, dict):  # 0.12.x merges per message
                mine = stored["chat"]["history"]
                mine["messages"].update(history.get("messages") or {})
                if history.get("currentId"):
                    mine["currentId"] = history["currentId"]
        # While an answer runs, the chat holds its text so far (0.11.1 and later).
        for answer in self.answers.values():
            if answer.chat_id == chat_id:
                self._message(chat_id, answer.message_id)["content"] = answer.text
        return web.json_response(stored)

    def _stop_task(self, task_id: str) -> None:
        for answer in list(self.answers.values()):
            if answer.task_id == task_id:
                self._message(answer.chat_id, answer.message_id)["content"] = answer.text
                self._end(answer)

    def _chat_data(self, chat_id: str) -> JSON:
        data: JSON = self.chats[chat_id]["chat"]
        return data

    def _message(self, chat_id: str, message_id: str) -> JSON:
        message: JSON = self._chat_data(chat_id)["history"]["messages"][message_id]
        return message
