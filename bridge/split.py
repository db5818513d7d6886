"""Split a long Markdown answer into platform messages, and put it back together.

Cuts fall after a paragraph break, else a line break, else a space, never
inside a word (a single word longer than the limit is the one exception). A
cut inside a fenced code block closes the fence at the end of the message and
re-opens it, with its language, at the start of the next, so every message
renders as code. ``join_split`` removes exactly those added markers, so the
parts of an answer can be compared with the stored answer.
"""

from __future__ import annotations

FENCES = ("```", "~~~")


def fits(text: str, limit: int) -> bool:
    return len(text) <= limit


def open_fence(text: str) -> str | None:
    """The opening line of the fence still open at the end of ``text``, if any."""
    opening: str | None = None
    for line in text.split("\n"):
        stripped = line.lstrip(" ")
        if opening is None:
            if stripped.startswith(FENCES):
                opening = stripped
        elif stripped.startswith(opening[:3]) and not stripped[3:].strip():
            opening = None
    return opening


def _close(opening: str) -> str:
    return "\n" + opening[:3]


def _cut(window: str) -> int:
    """Length of the best prefix of ``window`` to send now."""
    for separator in ("\n\n", "\n", " "):
        index = window.rfind(separator)
        if index > 0:
            return index + len(separator)
    return len(window)  # one word longer than a whole message


def split_message(text: str, limit: int) -> list[str]:
    if limit < 16:
        raise ValueError("limit too small to hold fence markers")
    parts: list[str] = []
    position = 0
    reopen = ""
    while True:
        rest = text[position:]
        if len(reopen) + len(rest) <= limit:
            if rest or not parts:
                parts.append(reopen + rest)
            return parts
        budget = limit - len(reopen) - len(_close("```"))
        cut = _cut(text[position : position + budget])
        piece = text[position : position + cut]
        position += cut
        opening = open_fence(text[:position])
        if opening is not None:
            parts.append(reopen + piece + _close(opening))
            reopen = opening + "\n"
        else:
            parts.append(reopen + piece)
            reopen = ""


def join_split(parts: list[str]) -> str:
    """The text ``split_message`` was given."""
    text = ""
    reopen = ""
    for index, part in enumerate(parts):
        if reopen:
            assert part.startswith(reopen), "part does not re-open its fence"
            part = part[len(reopen) :]
            reopen = ""
        last = index == len(parts) - 1
        if not last:
            for fence in FENCES:
                marker = "\n" + fence
                if part.endswith(marker):
                    opening = open_fence(text + part[: -len(marker)])
                    if opening is not None and opening.startswith(fence):
                        part = part[: -len(marker)]
                        reopen = opening + "\n"
                    break
        text += part
    return text
