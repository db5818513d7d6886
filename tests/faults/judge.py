"""Judges for the faults suite, independent of the bridge's code.

They look only at what a person sees in the thread (FakeSlack's messages) and at
what Open WebUI stored (the chat's history), never at bridge internals.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from tests.fakes.slack_server import Message
from tests.harness.model_server import expected_reply

# Characters that neutralise a Slack mention without changing what a person reads.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def shown(text: str) -> str:
    """What a person reads: Slack's three entities decoded, invisible characters gone."""
    decoded = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return decoded.translate(_INVISIBLE).strip()


def same_text(seen: str, expected: str) -> bool:
    return shown(seen) == expected


@dataclass(frozen=True)
class Verdict:
    questions: int
    answers: int  # questions with a complete answer on screen
    duplicates: int  # complete copies beyond the first
    lost: int  # questions without a complete answer
    extra: int  # bot messages that are no answer, or a second message for one answer
    in_order: bool  # first complete answers appear in question order
    answer_messages: tuple[Message | None, ...]  # the first complete answer per question

    def line(self, scenario: str, version: str) -> str:
        return (
            f"faults: {scenario} [owui-{version}] questions={self.questions} "
            f"answers={self.answers} duplicates={self.duplicates} lost={self.lost} "
            f"extra={self.extra}"
        )

    @property
    def clean(self) -> bool:
        return self.duplicates == self.lost == self.extra == 0


def judge(
    asked: Sequence[str],
    replies: Sequence[Message],
    *,
    partial_ok: Collection[int] = (),
    same: Callable[[str, str], bool] = same_text,
) -> Verdict:
    """Count what ``replies`` (the bot's messages in one thread) show for ``asked``.

    ``asked`` are the questions as the model sees them (``"Alice: hi [[words=5]]"``).
    A message is the complete answer to question i when it is no longer streaming
    and shows exactly ``expected_reply(asked[i])``; a part of that answer (a prefix)
    is a partial message for i. ``partial_ok`` lists questions whose answer was
    stopped on purpose: their one partial message counts as the answer.
    """
    expected = [expected_reply(q) for q in asked]
    complete: list[list[Message]] = [[] for _ in asked]
    partial: list[list[Message]] = [[] for _ in asked]
    unrelated = 0
    for message in replies:
        text = shown(message.text)
        finished = message.stream_state != "streaming"
        whole = [i for i, e in enumerate(expected) if finished and same(message.text, e)]
        if whole:
            complete[whole[0]].append(message)
            continue
        parts = [i for i, e in enumerate(expected) if text and e.startswith(text)]
        if parts:
            partial[parts[0]].append(message)
        else:
            unrelated += 1

    for i in partial_ok:
        if not complete[i] and partial[i]:
            complete[i].append(partial[i].pop(0))

    duplicates = sum(max(0, len(c) - 1) for c in complete)
    lost = sum(1 for c in complete if not c)
    # A frozen half beside the real answer, or several halves of a lost one.
    extra = unrelated + sum(
        len(p) if c else max(0, len(p) - 1) for c, p in zip(complete, partial, strict=True)
    )
    firsts = tuple(min(c, key=lambda m: float(m.ts)) if c else None for c in complete)
    order = [float(m.ts) for m in firsts if m is not None]
    return Verdict(
        questions=len(asked),
        answers=sum(1 for c in complete if c),
        duplicates=duplicates,
        lost=lost,
        extra=extra,
        in_order=order == sorted(order),
        answer_messages=firsts,
    )


def combine(verdicts: Sequence[Verdict]) -> Verdict:
    """One verdict for several threads (order is judged per thread)."""
    return Verdict(
        questions=sum(v.questions for v in verdicts),
        answers=sum(v.answers for v in verdicts),
        duplicates=sum(v.duplicates for v in verdicts),
        lost=sum(v.lost for v in verdicts),
        extra=sum(v.extra for v in verdicts),
        in_order=all(v.in_order for v in verdicts),
        answer_messages=tuple(m for v in verdicts for m in v.answer_messages),
    )


# -- the Open WebUI chat -------------------------------------------------------------


def message_text(message: dict[str, Any]) -> str:
    """A stored message's text: ``content``, or the text parts of 0.12.x's ``output``."""
    content = message.get("content")
    if isinstance(content, str) and content:
        return content
    parts: list[str] = []
    for item in message.get("output") or []:
        if isinstance(item, dict) and item.get("type") == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") == "output_text":
                    parts.append(str(part.get("text") or ""))
    return "".join(parts)


def _own_tree_problems(history: dict[str, Any]) -> list[str]:
    messages: dict[str, dict[str, Any]] = history.get("messages") or {}
    problems: list[str] = []
    roots = [i for i, m in messages.items() if not m.get("parentId")]
    if len(roots) != 1:
        problems.append(f"{len(roots)} roots: {roots}")
    for mid, message in messages.items():
        if message.get("id", mid) != mid:
            problems.append(f"{mid}: id field says {message.get('id')}")
        parent = message.get("parentId")
        if parent:
            if parent not in messages:
                problems.append(f"{mid}: parent {parent} missing")
            elif mid not in (messages[parent].get("childrenIds") or []):
                problems.append(f"{mid}: parent {parent} does not list it")
        for child in message.get("childrenIds") or []:
            if child not in messages:
                problems.append(f"{mid}: child {child} missing")
            elif messages[child].get("parentId") != mid:
                problems.append(f"{mid}: child {child} points elsewhere")
    current = history.get("currentId")
    if current not in messages:
        problems.append(f"currentId {current} missing")
        return problems
    roles = [m.get("role") for m in active_path(history)]
    if any(a == b for a, b in itertools.pairwise(roles)):
        problems.append(f"active path does not alternate: {roles}")
    return problems


def tree_problems(history: dict[str, Any]) -> list[str]:
    """Problems in the chat tree, by ``tests/treecheck.py`` where it exists, else our own."""
    try:
        treecheck = importlib.import_module("tests.treecheck")
    except ModuleNotFoundError:
        return _own_tree_problems(history)
    problems: list[str] = list(treecheck.problems(history))
    return problems


def active_path(history: dict[str, Any]) -> list[dict[str, Any]]:
    """Root first, down to ``currentId`` (what Open WebUI shows)."""
    messages: dict[str, dict[str, Any]] = history.get("messages") or {}
    path: list[dict[str, Any]] = []
    node = history.get("currentId")
    while node and node in messages and len(path) <= len(messages):
        path.append(messages[node])
        node = messages[node].get("parentId")
    return path[::-1]
