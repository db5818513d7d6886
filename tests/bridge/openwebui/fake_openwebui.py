"""A small in-process Open WebUI 0.12.x for pure-logic tests of the core.

Only what ``bridge.openwebui.flows.ServerManagedFlow`` and the follower use, served through
``httpx.MockTransport``; the real protocol is covered by the real-server tests.
A completion inserts the question and an empty answer under ``parent_id`` (as
0.12.x does) and hands the answer to ``on_completion``: by default it is
finished at once; ``hold()`` lets a test write, finish, fail or abandon it.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bridge.openwebui.client import Credentials, OpenWebUIClient

VERSION = "0.12.4"
BASE_URL = "http://owui.test"


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
        self.message["done"] = True
        self._end()

    def fail(self, error: str) -> None:
        self.message["error"] = {"content": error}
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
    models: list[str] = field(default_factory=lambda: ["m"])
    chats: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, list[str]] = field(default_factory=dict)  # chat id -> running task ids
    answers: dict[str, Answer] = field(default_factory=dict)  # by assistant message id
    received: list[Received] = field(default_factory=list)
    on_completion: Callable[[Answer], None] = echo
    held: asyncio.Queue[Answer] = field(default_factory=asyncio.Queue)
    drop_completion_responses: int = 0  # completions done whose answer never arrives

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

    def stops(self, chat_id: str) -> int:
        return sum(1 for r in self.received if r.path == f"/api/tasks/chat/{chat_id}/stop")

    def chat_writes(self, chat_id: str) -> int:
        path = f"/api/v1/chats/{chat_id}"
        return sum(1 for r in self.received if r.method == "POST" and r.path == path)

    # -- the HTTP side --------------------------------------------------------

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body: Any = json.loads(request.content) if request.content else None
        path = request.url.path
        self.received.append(Received(request.method, path, copy.deepcopy(body)))
        parts = path.strip("/").split("/")
        if request.method == "GET" and path == "/api/version":
            return httpx.Response(200, json={"version": VERSION})
        if request.method == "GET" and path == "/api/models":
            return httpx.Response(200, json={"data": [{"id": m} for m in self.models]})
        if request.method == "POST" and path == "/api/chat/completions":
            response = self._completion(body)
            if self.drop_completion_responses:
                # The server did the work, but the connection broke before it answered
                # (seen on 0.12.x with eight answers at once on two cores).
                self.drop_completion_responses -= 1
                raise httpx.ReadError("connection reset", request=request)
            return response
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
        return httpx.Response(404, json={"detail": f"no route {request.method} {path}"})

    def _stop(self, chat_id: str) -> httpx.Response:
        """As 0.12.x: a task stopped while streaming leaves its answer done, one stopped
        before its first words leaves it open; with no task running, the chat's open
        answers are marked done."""
        task_ids = self.tasks.pop(chat_id, [])
        for answer in self.answers.values():
            if answer.task_id in task_ids:
                answer.stopped = True
                if answer.message.get("content"):
                    answer.message["done"] = True
        if task_ids:
            return httpx.Response(200, json={"status": True, "message": "stopped"})
        for message in self.history(chat_id)["messages"].values():
            if message.get("role") == "assistant" and message.get("done") is False:
                message["done"] = True
        return httpx.Response(200, json={"status": True, "message": "No tasks found."})

    def _completion(self, body: dict[str, Any]) -> httpx.Response:
        model = body.get("model")
        if model not in self.models:
            return httpx.Response(400, json={"detail": "Model not found"})
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
