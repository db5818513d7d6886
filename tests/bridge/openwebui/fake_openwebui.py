"""A small in-process Open WebUI for pure-logic tests of the core.

Only what the turn flows (``bridge.openwebui.flows``), the follower and the ratings
use, served through ``httpx.MockTransport``; the real protocol is covered by the
real-server tests. ``version`` picks the generation it behaves as (read from
Open WebUI's source of each release):

- 0.9.0 and later: a completion inserts the question and an empty answer under
  ``parent_id`` itself (``user_message``).
- 0.6.x: the client writes the whole history (``chats/new``, then whole-history
  updates) and the completion names the answer (``chat_id`` + ``id``); the server
  upserts the answer's ``model`` and, from 0.6.41, its ``parentId`` from the
  request's ``parent_id`` (null when absent: the answer is cut loose, as on the
  real server). The answer is never marked ``done`` before 0.8.11, and tasks are
  stopped one by one (``/api/tasks/stop/{id}``) before 0.9.0.

Either way the answer goes to ``on_completion``: by default it is finished at
once; ``hold()`` lets a test write, finish, fail or abandon it. Feedback records
(Admin → Evaluations) behave as ``routers/evaluations.py`` of 0.6.15 and 0.12.4.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bridge.openwebui.client import Credentials, OpenWebUIClient

VERSION = "0.12.4"
BASE_URL = "http://owui.test"
EVALUATIONS = "/api/v1/evaluations"
USER_ID = "user-1"  # the one account the bridge signs in as
NOT_FOUND = "We could not find what you're looking for :/"  # ERROR_MESSAGES.NOT_FOUND


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    body: Any


@dataclass
class Answer:
    """One answer being written by the fake server (one task in its chat)."""

    server: FakeOpenWebUI
    chat_id: str
    message_id: str
    question: str
    task_id: str
    stopped: bool = False  # ended by the task stop endpoint

    @property
    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = self.server.history(self.chat_id)["messages"][self.message_id]
        return message

    @property
    def running(self) -> bool:
        return self.task_id in self.server.tasks.get(self.chat_id, [])

    def write(self, text: str) -> None:
        """The whole text so far, as streaming leaves it (not done)."""
        self.message["content"] = text

    def finish(self, text: str | None = None) -> None:
        if text is not None:
            self.message["content"] = text
        if self.server.marks_done:
            self.message["done"] = True
        self._end()

    def fail(self, error: str) -> None:
        self.message["error"] = {"content": error}
        if self.server.marks_done:
            self.message["done"] = True
        self._end()

    def abandon(self) -> None:
        """The server lost the task: the text stays as it is, never done."""
        self._end()

    def _end(self) -> None:
        tasks = self.server.tasks.get(self.chat_id, [])
        if self.task_id in tasks:
            tasks.remove(self.task_id)


def echo(answer: Answer) -> None:
    answer.finish(f"answer to {answer.question}")


@dataclass
class FakeOpenWebUI:
    version: str = VERSION
    models: list[str] = field(default_factory=lambda: ["m"])
    chats: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, list[str]] = field(default_factory=dict)  # chat id -> running task ids
    answers: dict[str, Answer] = field(default_factory=dict)  # by assistant message id
    received: list[Received] = field(default_factory=list)
    on_completion: Callable[[Answer], None] = echo
    held: asyncio.Queue[Answer] = field(default_factory=asyncio.Queue)
    drop_completion_responses: int = 0  # completions done whose answer never arrives
    feedbacks: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id
    clock: Callable[[], float] = time.time  # feedback timestamps (whole seconds, as stored)
    # Files (``/api/v1/files``): stored by id with their bytes; extensions the admin
    # does not allow (400); names whose processing fails; models that cannot see images.
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    file_bytes: dict[str, bytes] = field(default_factory=dict)
    refused_extensions: set[str] = field(default_factory=set)
    failing_names: set[str] = field(default_factory=set)
    blind_models: set[str] = field(default_factory=set)

    @property
    def managed_turns(self) -> bool:
        """0.9.0+: the server inserts a turn from ``user_message`` + ``parent_id``."""
        return _release(self.version) >= (0, 9, 0)

    @property
    def marks_done(self) -> bool:
        """0.8.11+: the server writes ``done: true`` on a finished answer."""
        return _release(self.version) >= (0, 8, 11)

    # -- what tests use -----------------------------------------------------

    def client(self) -> OpenWebUIClient:
        """A client for this server (call ``connect`` before use)."""
        http = httpx.AsyncClient(transport=httpx.MockTransport(self.handle))
        return OpenWebUIClient(BASE_URL, Credentials(token="sk-test"), http=http, backoff=0.01)

    def hold(self) -> None:
        """From now on answers wait in ``held`` for the test to end them."""
        self.on_completion = self.held.put_nowait

    def auto(self) -> None:
        """From now on answers are finished at once (the default)."""
        self.on_completion = echo

    async def next_held(self, timeout: float = 2.0) -> Answer:
        return await asyncio.wait_for(self.held.get(), timeout)

    def history(self, chat_id: str) -> dict[str, Any]:
        history: dict[str, Any] = self.chats[chat_id]["chat"]["history"]
        return history

    @property
    def completions(self) -> list[dict[str, Any]]:
        return [r.body for r in self.received if r.path == "/api/chat/completions"]

    @property
    def questions(self) -> list[str]:
        """The question of each completion, in order, whichever flow sent it."""
        return [_question_of(body) for body in self.completions]

    def stops(self, chat_id: str) -> int:
        """Stop requests for the chat's answers: per chat (0.9.0+) or per task."""
        by_chat = sum(1 for r in self.received if r.path == f"/api/tasks/chat/{chat_id}/stop")
        tasks = {a.task_id for a in self.answers.values() if a.chat_id == chat_id}
        by_task = sum(1 for r in self.received if r.path.removeprefix("/api/tasks/stop/") in tasks)
        return by_chat + by_task

    def ratings(self, message_id: str) -> list[tuple[str, int]]:
        """(who rated, vote) of every feedback record on the answer, as Admin →
        Evaluations lists them (who: the platform user the bridge put in ``meta``)."""
        found = []
        for record in self.feedbacks.values():
            meta, data = record.get("meta") or {}, record.get("data") or {}
            if meta.get("message_id") == message_id:
                person = meta.get("platform_user") or {}
                found.append((str(person.get("id", "?")), int(data.get("rating") or 0)))
        return sorted(found)

    def chat_writes(self, chat_id: str) -> int:
        path = f"/api/v1/chats/{chat_id}"
        return sum(1 for r in self.received if r.method == "POST" and r.path == path)

    # -- the HTTP side --------------------------------------------------------

    @property
    def uploads(self) -> list[str]:
        """The names of the files uploaded, in order."""
        return [f["filename"] for f in self.files.values()]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path == "/api/v1/files/":
            self.received.append(Received(request.method, path, None))
            return self._upload(request)
        body: Any = json.loads(request.content) if request.content else None
        self.received.append(Received(request.method, path, copy.deepcopy(body)))
        parts = path.strip("/").split("/")
        if parts[:3] == ["api", "v1", "files"] and len(parts) >= 5:
            return self._file(parts[3], "/".join(parts[4:]))
        if request.method == "GET" and path == "/api/version":
            return httpx.Response(200, json={"version": self.version})
        if request.method == "GET" and path == "/api/models":
            return httpx.Response(200, json={"data": [self._model(m) for m in self.models]})
        if request.method == "POST" and path == "/api/chat/completions":
            response = self._completion(body)
            if self.drop_completion_responses:
                # The server did the work, but the connection broke before it answered
                # (seen on 0.12.x with eight answers at once on two cores).
                self.drop_completion_responses -= 1
                raise httpx.ReadError("connection reset", request=request)
            return response
        if path.startswith(EVALUATIONS + "/"):
            return self._evaluations(request, path.removeprefix(EVALUATIONS), body)
        if request.method == "POST" and path == "/api/v1/chats/new":
            chat_id = str(uuid.uuid4())
            self.chats[chat_id] = {"id": chat_id, "chat": copy.deepcopy(body["chat"])}
            return httpx.Response(200, json=copy.deepcopy(self.chats[chat_id]))
        if parts[:3] == ["api", "v1", "chats"] and len(parts) == 4:
            chat = self.chats.get(parts[3])
            if chat is None:
                return httpx.Response(404, json={"detail": "chat not found"})
            if request.method == "POST":
                chat["chat"].update(copy.deepcopy(body["chat"]))  # full-history writes only
            return httpx.Response(200, json=copy.deepcopy(chat))
        if parts[:3] == ["api", "tasks", "chat"] and len(parts) == 4:
            return httpx.Response(200, json={"task_ids": list(self.tasks.get(parts[3], []))})
        if parts[:3] == ["api", "tasks", "chat"] and parts[4:] == ["stop"]:
            return self._stop(parts[3])
        if request.method == "POST" and parts[:3] == ["api", "tasks", "stop"] and len(parts) == 4:
            for answer in self.answers.values():  # 0.6.x: one task at a time
                if answer.task_id == parts[3] and answer.running:
                    answer.stopped = True
                    answer.abandon()
            return httpx.Response(200, json={"status": True, "message": "Stop signal sent"})
        return httpx.Response(404, json={"detail": f"no route {request.method} {path}"})

    def _model(self, model: str) -> dict[str, Any]:
        if model not in self.blind_models:
            return {"id": model}
        return {"id": model, "info": {"meta": {"capabilities": {"vision": False}}}}

    def _upload(self, request: httpx.Request) -> httpx.Response:
        """``POST /api/v1/files/``: the multipart ``file`` stored; processed at once."""
        raw = request.read()
        content_type = request.headers["content-type"]
        boundary = content_type.split("boundary=")[1].encode()
        part = next(p for p in raw.split(b"--" + boundary) if b'name="file"' in p)
        head, _, data = part.partition(b"\r\n\r\n")
        name = re.search(rb'filename="([^"]*)"', head)
        filename = name.group(1).decode() if name else "file"
        if filename.rsplit(".", 1)[-1] in self.refused_extensions:
            detail = f"File type {filename.rsplit('.', 1)[-1]} is not allowed"
            return httpx.Response(400, json={"detail": detail})
        file_id = str(uuid.uuid4())
        process = request.url.params.get("process", "true") != "false"
        status = "failed" if filename in self.failing_names else "completed"
        self.file_bytes[file_id] = data.removesuffix(b"\r\n")
        self.files[file_id] = {
            "id": file_id,
            "filename": filename,
            "data": {"status": status} if process else {},
            "meta": {"name": filename, "size": len(self.file_bytes[file_id])},
        }
        return httpx.Response(200, json=copy.deepcopy(self.files[file_id]))

    def _file(self, file_id: str, rest: str) -> httpx.Response:
        stored = self.files.get(file_id)
        if stored is None:
            return httpx.Response(404, json={"detail": NOT_FOUND})
        if rest == "process/status":
            return httpx.Response(200, json={"status": stored["data"].get("status")})
        return httpx.Response(200, content=self.file_bytes[file_id])

    def _evaluations(self, request: httpx.Request, path: str, body: Any) -> httpx.Response:
        """The feedback endpoints the bridge uses; one account, so no per-user filter."""
        method, now = request.method, int(self.clock())
        if method == "POST" and path == "/feedback":
            record = {
                **_feedback_form(body),
                "id": str(uuid.uuid4()),
                "user_id": USER_ID,
                "version": 0,
                "created_at": now,
                "updated_at": now,
            }
            self.feedbacks[record["id"]] = record
            return httpx.Response(200, json=copy.deepcopy(record))
        if path.startswith("/feedback/"):
            record = self.feedbacks.get(path.removeprefix("/feedback/"))
            if record is None:
                return httpx.Response(404, json={"detail": NOT_FOUND})
            if method == "GET":
                return httpx.Response(200, json=copy.deepcopy(record))
            if method == "POST":
                # Each part given replaces the stored one; the id and creation stay.
                record.update({k: v for k, v in _feedback_form(body).items() if v and k != "type"})
                record["updated_at"] = now
                return httpx.Response(200, json=copy.deepcopy(record))
            if method == "DELETE":
                del self.feedbacks[record["id"]]
                return httpx.Response(200, json=True)
        if method == "GET" and path == "/feedbacks/user":
            mine = sorted(self.feedbacks.values(), key=lambda r: -int(r["updated_at"]))
            if _release(self.version) < (0, 6, 41):
                return httpx.Response(200, json=copy.deepcopy(mine))  # one list, no pages
            page = max(1, int(request.url.params.get("page", "1")))
            items = mine[(page - 1) * 30 : page * 30]
            return httpx.Response(200, json={"items": copy.deepcopy(items), "total": len(mine)})
        return httpx.Response(404, json={"detail": f"no route {method} {EVALUATIONS}{path}"})

    def _stop(self, chat_id: str) -> httpx.Response:
        """As 0.9.0+: a task stopped while streaming leaves its answer done, one stopped
        before its first words leaves it open; from 0.11.4, with no task running, the
        chat's open answers are marked done."""
        task_ids = self.tasks.pop(chat_id, [])
        for answer in self.answers.values():
            if answer.task_id in task_ids:
                answer.stopped = True
                if answer.message.get("content"):
                    answer.message["done"] = True
        if task_ids or _release(self.version) < (0, 11, 4):
            return httpx.Response(200, json={"status": True, "message": "stopped"})
        for message in self.history(chat_id)["messages"].values():
            if message.get("role") == "assistant" and message.get("done") is False:
                message["done"] = True
        return httpx.Response(200, json={"status": True, "message": "No tasks found."})

    def _completion(self, body: dict[str, Any]) -> httpx.Response:
        model = body.get("model")
        if model not in self.models:
            return httpx.Response(400, json={"detail": "Model not found"})
        if not self.managed_turns:
            return self._completion_06(body, str(model))
        user, answer_id = body["user_message"], body["id"]
        parent_id = body.get("parent_id")
        chat_id = body.get("chat_id") or str(uuid.uuid4())
        if chat_id not in self.chats:
            history: dict[str, Any] = {"currentId": None, "messages": {}}
            self.chats[chat_id] = {"id": chat_id, "chat": {"title": "New Chat", "history": history}}
        messages = self.history(chat_id)["messages"]
        if parent_id is not None and parent_id not in messages:
            # Real servers would store a broken link; refusing makes the bug obvious.
            return httpx.Response(400, json={"detail": f"parent {parent_id} not in chat"})
        if parent_id is not None:
            messages[parent_id].setdefault("childrenIds", []).append(user["id"])
        messages[user["id"]] = {
            **user,
            "parentId": parent_id,
            "childrenIds": [answer_id],
        }
        messages[answer_id] = {
            "id": answer_id,
            "parentId": user["id"],
            "childrenIds": [],
            "role": "assistant",
            "content": "",
            "model": model,
            "done": False,
        }
        self.history(chat_id)["currentId"] = answer_id
        task_id = str(uuid.uuid4())
        self.tasks.setdefault(chat_id, []).append(task_id)
        answer = Answer(self, chat_id, answer_id, str(user.get("content", "")), task_id)
        self.answers[answer_id] = answer
        self.on_completion(answer)
        return httpx.Response(200, json={"status": True, "task_ids": [task_id], "chat_id": chat_id})

    def _completion_06(self, body: dict[str, Any], model: str) -> httpx.Response:
        """0.6.x: the turn is in the chat already (written by the client); the server
        upserts the answer named by ``id`` and writes into it."""
        chat_id, answer_id = body.get("chat_id"), body["id"]
        if chat_id not in self.chats:
            return httpx.Response(400, json={"detail": f"chat {chat_id} not found"})
        history = self.history(chat_id)
        fields: dict[str, Any] = {"model": model}
        if _release(self.version) >= (0, 6, 41):
            fields["parentId"] = body.get("parent_id")  # null when absent, as 0.6.41 does
        history["messages"][answer_id] = {**history["messages"].get(answer_id, {}), **fields}
        history["currentId"] = answer_id
        task_id = str(uuid.uuid4())
        self.tasks.setdefault(chat_id, []).append(task_id)
        answer = Answer(self, chat_id, answer_id, _question_of(body), task_id)
        self.answers[answer_id] = answer
        self.on_completion(answer)
        return httpx.Response(200, json={"status": True, "task_id": task_id})


def _question_of(body: dict[str, Any]) -> str:
    """The question a completion asks: its ``user_message`` (0.9.0+), else the last
    user message of ``messages``."""
    if isinstance(body.get("user_message"), dict):
        return str(body["user_message"].get("content", ""))
    asked = [m for m in body.get("messages") or [] if m.get("role") == "user"]
    return str(asked[-1].get("content", "")) if asked else ""


def _feedback_form(body: Any) -> dict[str, Any]:
    """What ``FeedbackForm`` keeps of a request: type, data, meta, snapshot."""
    body = body if isinstance(body, dict) else {}
    return {key: copy.deepcopy(body.get(key)) for key in ("type", "data", "meta", "snapshot")}
