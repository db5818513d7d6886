"""An Open WebUI chat ``history`` judged from outside: written from what the web
UI needs, independently of ``bridge.openwebui.tree`` (the code under test), so a bug
there cannot hide itself in its own check.

``history = {"currentId": id, "messages": {id: message}}``; each message names
its ``parentId`` and ``childrenIds``. The web UI shows the path from the root
to ``currentId``: a question, its answer, the next question, and so on.
"""

from __future__ import annotations

from typing import Any

Message = dict[str, Any]


def problems(history: Any, require_done: bool = True) -> list[str]:
    """Every way ``history`` would render wrongly; empty when it is sound.

    Sound: exactly one root (or sibling first questions, as an edit makes); every
    ``parentId`` exists and lists the message among its ``childrenIds``; every
    child exists and points back; each message is stored under its own id;
    ``currentId`` exists and the path from the root to it alternates user,
    assistant (a system message may come first); with
    ``require_done``, every answer in the chat is ``done``."""
    if not isinstance(history, dict) or not isinstance(history.get("messages"), dict):
        return ["history has no messages mapping"]
    messages: dict[str, Any] = history["messages"]
    found: list[str] = []
    for key, message in messages.items():
        if not isinstance(message, dict):
            found.append(f"{key}: not a message object")
    if found:
        return found

    for key, message in messages.items():
        if message.get("id") != key:
            found.append(f"{key}: stored under a key that is not its id {message.get('id')!r}")
        parent = message.get("parentId")
        if parent is not None:
            if parent not in messages:
                found.append(f"{key}: parent {parent} does not exist")
            elif key not in (messages[parent].get("childrenIds") or []):
                found.append(f"{key}: parent {parent} does not list it as a child")
        children = message.get("childrenIds") or []
        if len(set(children)) != len(children):
            found.append(f"{key}: lists a child twice")
        for child in children:
            if child not in messages:
                found.append(f"{key}: child {child} does not exist")
            elif messages[child].get("parentId") != key:
                found.append(f"{key}: child {child} points to another parent")
        if require_done and message.get("role") == "assistant" and message.get("done") is not True:
            found.append(f"{key}: answer not done")

    roots = sorted(key for key, m in messages.items() if m.get("parentId") is None)
    # Several roots are the web UI's edit of the first question: sibling questions.
    if not roots or (len(roots) > 1 and any(messages[r].get("role") != "user" for r in roots)):
        found.append(
            f"expected exactly one root or sibling first questions, found {len(roots)}: {roots}"
        )

    current = history.get("currentId")
    if current not in messages:
        found.append(f"currentId {current!r} is not a message")
        return found

    path = _path_to(messages, current)
    if path is None:
        found.append(f"currentId {current}: its parents loop or break before a root")
        return found
    found.extend(_alternation_problems(path))
    return found


def branch(history: dict[str, Any]) -> list[Message]:
    """The messages the web UI shows: root to ``currentId``, in order. Raises
    ``ValueError`` when there is no such path (check ``problems`` first)."""
    messages: dict[str, Message] = history["messages"]
    path = _path_to(messages, history.get("currentId"))
    if path is None:
        raise ValueError(f"no path from a root to currentId {history.get('currentId')!r}")
    return path


def answer_text(message: Message) -> str:
    """What an answer says: ``content``, or on 0.12.x while only the structured
    ``output`` is filled, the text of its message items."""
    content = message.get("content")
    if isinstance(content, str) and content:
        return content
    texts = []
    for item in message.get("output") or []:
        if isinstance(item, dict) and item.get("type") == "message":
            texts.append(
                "".join(
                    str(part.get("text", ""))
                    for part in item.get("content") or []
                    if isinstance(part, dict) and part.get("type") == "output_text"
                )
            )
    return "".join(texts)


def _path_to(messages: dict[str, Message], leaf: Any) -> list[Message] | None:
    path: list[Message] = []
    seen: set[str] = set()
    current = leaf
    while current is not None:
        if current in seen or current not in messages:
            return None
        seen.add(current)
        path.append(messages[current])
        current = messages[current].get("parentId")
    path.reverse()
    return path


def _alternation_problems(path: list[Message]) -> list[str]:
    found: list[str] = []
    roles = [m.get("role") for m in path]
    start = 1 if roles and roles[0] == "system" else 0
    for i, (message, role) in enumerate(zip(path[start:], roles[start:], strict=True)):
        wanted = "user" if i % 2 == 0 else "assistant"
        if role != wanted:
            found.append(f"{message.get('id')}: shown as {role!r} where a {wanted} belongs")
    return found
