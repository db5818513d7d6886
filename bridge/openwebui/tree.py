"""The Open WebUI message tree: the only module that builds or edits ``history``.

A chat stores ``history = {"currentId": id, "messages": {id: message}}``; each
message links to its parent (``parentId``) and children (``childrenIds``). The
web UI renders the branch from the root to ``currentId``, so a turn that breaks
these links shows answers without questions, or nothing at all.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

Message = dict[str, Any]
History = dict[str, Any]


class TreeInvalid(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def new_id() -> str:
    return str(uuid.uuid4())


def user_message(
    message_id: str,
    parent_id: str | None,
    content: str,
    model: str,
    files: Sequence[dict[str, Any]] = (),
) -> Message:
    message: Message = {
        "id": message_id,
        "parentId": parent_id,
        "childrenIds": [],
        "role": "user",
        "content": content,
        "models": [model],
        "timestamp": int(time.time()),
    }
    if files:  # as the web UI keeps them: shown on the question, openable by an admin
        message["files"] = [copy.deepcopy(f) for f in files]
    return message


def assistant_placeholder(
    message_id: str, parent_id: str, model: str, statuses: list[dict[str, Any]] | None = None
) -> Message:
    """An empty answer; ``statuses``: entries the web UI draws above it from the start
    (the server appends its own to them and keeps them while it writes the answer)."""
    message: Message = {
        "id": message_id,
        "parentId": parent_id,
        "childrenIds": [],
        "role": "assistant",
        "content": "",
        "model": model,
        "modelName": model,
        "done": False,
        "timestamp": int(time.time()),
    }
    if statuses:
        message["statusHistory"] = copy.deepcopy(statuses)
    return message


def empty_history() -> History:
    return {"currentId": None, "messages": {}}


def history_of(chat: dict[str, Any]) -> History:
    """The ``history`` of a chat as ``GET /api/v1/chats/{id}`` returns it."""
    history = (chat.get("chat") or {}).get("history")
    return history if isinstance(history, dict) else empty_history()


def message_in(chat: dict[str, Any], message_id: str) -> Message | None:
    message = (history_of(chat).get("messages") or {}).get(message_id)
    return message if isinstance(message, dict) else None


def add_turn(history: History, user: Message, assistant: Message) -> History:
    """A copy of ``history`` with ``user`` under its ``parentId`` and ``assistant``
    under ``user``; ``currentId`` moves to the new answer. Nothing else changes."""
    result = copy.deepcopy(history)
    messages: dict[str, Message] = result.setdefault("messages", {})
    parent_id = user.get("parentId")
    if parent_id is not None and parent_id not in messages:
        raise TreeInvalid([f"parent {parent_id} is not in the chat"])
    for message in (user, assistant):
        if message["id"] in messages:
            raise TreeInvalid([f"message {message['id']} already exists"])
    if assistant.get("parentId") != user["id"]:
        raise TreeInvalid(["the answer must hang under its question"])
    if parent_id is not None:
        messages[parent_id].setdefault("childrenIds", []).append(user["id"])
    messages[user["id"]] = {**copy.deepcopy(user), "childrenIds": [assistant["id"]]}
    messages[assistant["id"]] = copy.deepcopy(assistant)
    result["currentId"] = assistant["id"]
    return result


def add_answer(history: History, question_id: str, assistant: Message) -> History:
    """A copy of ``history`` with ``assistant`` as a further answer to the existing
    question ``question_id`` (a regenerated answer: the web UI shows "2/2");
    ``currentId`` moves to it."""
    result = copy.deepcopy(history)
    messages: dict[str, Message] = result.setdefault("messages", {})
    if question_id not in messages:
        raise TreeInvalid([f"question {question_id} is not in the chat"])
    if assistant["id"] in messages:
        raise TreeInvalid([f"message {assistant['id']} already exists"])
    if assistant.get("parentId") != question_id:
        raise TreeInvalid(["the answer must hang under its question"])
    messages[question_id].setdefault("childrenIds", []).append(assistant["id"])
    messages[assistant["id"]] = copy.deepcopy(assistant)
    result["currentId"] = assistant["id"]
    return result


def branch(history: History, leaf_id: str | None) -> list[Message]:
    """Messages from the root down to ``leaf_id``."""
    messages: dict[str, Message] = history.get("messages") or {}
    chain: list[Message] = []
    seen: set[str] = set()
    current = leaf_id
    while current is not None and current in messages and current not in seen:
        seen.add(current)
        chain.append(messages[current])
        current = messages[current].get("parentId")
    chain.reverse()
    return chain


def message_text(message: Message) -> str:
    """The plain text of a message: ``content``, or the text parts of ``output``
    (0.12.x keeps both; while streaming only ``output`` may be filled)."""
    content = message.get("content")
    if isinstance(content, str) and content:
        return content
    return output_text(message.get("output"))


def output_text(output: Any) -> str:
    if not isinstance(output, list):
        return ""
    parts: list[str] = []
    for item in output:
        if isinstance(item, dict) and item.get("type") == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") == "output_text":
                    parts.append(str(part.get("text") or ""))
    return "".join(parts)


def completion_messages(
    history: History, leaf_id: str | None, image_urls: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The branch as the role/content list a completion request carries; empty
    placeholders are left out (the model must not see blank answers). A question's
    images become ``image_url`` parts after its text, on every question of the branch
    as the web UI sends them; ``image_urls`` gives the URL to send per file id."""
    result: list[dict[str, Any]] = []
    for message in branch(history, leaf_id):
        text = message_text(message)
        if message.get("role") == "assistant" and not text:
            continue
        content: Any = text
        pictures = [
            (image_urls or {}).get(str(f.get("id")), str(f.get("url") or ""))
            for f in images_of(message)
        ]
        if message.get("role") == "user" and any(pictures):
            content = [
                {"type": "text", "text": text},
                *({"type": "image_url", "image_url": {"url": url}} for url in pictures if url),
            ]
        result.append({"role": str(message.get("role")), "content": content})
    return result


def images_of(message: Message) -> list[dict[str, Any]]:
    """The image items on a question (``files`` entries of type image)."""
    return _files_of(message, "image")


def _files_of(message: Message, kind: str) -> list[dict[str, Any]]:
    return [f for f in message.get("files") or [] if isinstance(f, dict) and f.get("type") == kind]


def with_message(history: History, message_id: str, **fields: Any) -> History:
    """A copy of ``history`` with ``fields`` set on one existing message (whole
    message kept: Open WebUI replaces a message with whatever object it is sent)."""
    result = copy.deepcopy(history)
    messages = result.get("messages") or {}
    if message_id not in messages:
        raise TreeInvalid([f"message {message_id} is not in the chat"])
    messages[message_id].update(fields)
    return result


def problems(history: History, *, require_done: bool = True) -> list[str]:
    """Everything that would make the web UI render the chat wrongly."""
    messages: dict[str, Message] = history.get("messages") or {}
    found: list[str] = []
    roots = [mid for mid, m in messages.items() if m.get("parentId") is None]
    # Several roots are the web UI's edit of the first question: sibling questions.
    several = len(roots) > 1 and any(messages[r].get("role") != "user" for r in roots)
    if messages and (not roots or several):
        found.append(f"expected one root, found {len(roots)}: {sorted(roots)}")
    for mid, message in messages.items():
        if message.get("id", mid) != mid:
            found.append(f"message {mid} carries id {message.get('id')}")
        parent_id = message.get("parentId")
        if parent_id is not None:
            parent = messages.get(parent_id)
            if parent is None:
                found.append(f"message {mid} has missing parent {parent_id}")
            elif mid not in (parent.get("childrenIds") or []):
                found.append(f"parent {parent_id} does not list child {mid}")
        for child_id in message.get("childrenIds") or []:
            child = messages.get(child_id)
            if child is None:
                found.append(f"message {mid} lists missing child {child_id}")
            elif child.get("parentId") != mid:
                found.append(f"child {child_id} does not point back to {mid}")
        if message.get("role") not in ("user", "assistant", "system"):
            found.append(f"message {mid} has no role")
        if require_done and message.get("role") == "assistant" and message.get("done") is not True:
            found.append(f"answer {mid} is not done")
    current = history.get("currentId")
    if messages and current not in messages:
        found.append(f"currentId {current} is not a message")
    return found


def check(history: History, *, require_done: bool = True) -> None:
    found = problems(history, require_done=require_done)
    if found:
        raise TreeInvalid(found)


def history_fields(history: History) -> dict[str, Any]:
    """``history`` plus the flat ``messages[]`` of its current branch, as the web UI
    writes them; for an update that must not touch the chat's other fields."""
    return {
        "history": history,
        "messages": [copy.deepcopy(m) for m in branch(history, history.get("currentId"))],
    }


def chat_document(history: History, *, title: str, model: str, system: str = "") -> dict[str, Any]:
    """A whole new chat object for ``POST /api/v1/chats/new``."""
    return {
        "title": title,
        "models": [model],
        **history_fields(history),
        "params": system_params(system),
        "files": [],
        "tags": [],
        "timestamp": int(time.time() * 1000),
    }


def system_params(system: str) -> dict[str, Any]:
    """A chat's ``params`` holding its system prompt, where the web UI shows it
    (Chat Controls → System Prompt)."""
    return {"system": system} if system else {}
