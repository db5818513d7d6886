"""What a thread shows of an answer: Open WebUI's ``<details>`` blocks made short.

Open WebUI before 0.10 writes reasoning, tool calls and code-interpreter runs into
the answer's ``content`` as HTML blocks its web page folds away
(``open_webui/utils/middleware.py``, ``serialize_content_blocks``)::

    <details type="reasoning" done="true" duration="3">
    <summary>Thought for 3 seconds</summary>
    > the model's thoughts, each line quoted
    </details>
    <details type="tool_calls" done="true" id="…" name="get_weather" arguments="…" …>
    <summary>Tool Executed</summary>
    </details>

While a block is still being written it says ``done="false"`` (``Thinking…``,
``Executing...``, ``Analyzing...``) and is rewritten as ``done="true"`` once
finished. From 0.10 reasoning and tools are kept in the structured ``output``,
so its ``content`` has no such blocks and passes through unchanged.

A chat platform would show these blocks as raw HTML. ``visible_text`` turns a
finished reasoning block into one line ``_Thought for N seconds_`` (or nothing,
with ``reasoning="hide"``), a finished tool call into ``_Used tool:_ `name```, a
code run into ``_Ran code_``, and leaves every other character as it is,
including ``<details>`` a person or model wrote, and anything inside a fenced
code block.

Streaming guarantee: for every string ``s`` and every prefix ``p`` of ``s``,
``visible_text(p)`` is a prefix of ``visible_text(s)`` (same ``reasoning``). To
keep it, the text from an unfinished block (``done`` not ``"true"``, or no
closing ``</details>`` line yet) to the end is not shown, nor is a last,
unterminated line that could still become a block's opening tag. Open WebUI's
own rewrite of an unfinished block into a finished one (not a prefix
extension) also only adds text: the unfinished block and what follows were
hidden, the finished block becomes a note. Only the blocks' fixed form is
recognised: an opening tag alone at the start of a line and a closing line
starting with ``</details>``, outside code fences.
"""

from __future__ import annotations

import html
import re
from typing import Literal

Reasoning = Literal["summary", "hide"]

_TYPES = ("reasoning", "tool_calls", "code_interpreter")
_HEADS = tuple(f'<details type="{t}"' for t in _TYPES)
_OPENING = re.compile(
    r'<details type="(?P<type>reasoning|tool_calls|code_interpreter)"(?P<attrs>[^>]*)>'
)
_ATTRIBUTE = re.compile(r'(\w+)="([^"]*)"')
_CLOSING = "</details>"
# CommonMark fences: up to three spaces, then at least three ` or ~.
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LINES = re.compile(r"[^\n]*\n|[^\n]+")


def visible_text(content: str, reasoning: Reasoning = "summary") -> str:
    """``content`` as a thread should show it (see the module docstring)."""
    lines = _LINES.findall(content)
    shown: list[str] = []
    fence: str | None = None  # the marker that opened the current code fence
    i = 0
    while i < len(lines):
        line = lines[i]
        body = line.rstrip("\n")
        if fence is not None:
            shown.append(line)
            if body.strip().startswith(fence) and set(body.strip()) == {fence[0]}:
                fence = None
            i += 1
            continue
        marker = _FENCE.match(body)
        if marker:
            fence = marker.group(1)
            shown.append(line)
            i += 1
            continue
        opening = _OPENING.match(body)
        if opening is None:
            if not line.endswith("\n") and _may_become_opening(body):
                break  # the next characters decide whether this is a block
            shown.append(line)
            i += 1
            continue
        closing = next((j for j in range(i + 1, len(lines)) if lines[j].startswith(_CLOSING)), None)
        attributes = dict(_ATTRIBUTE.findall(opening.group("attrs")))
        if closing is None or attributes.get("done") != "true":
            break  # unfinished: it and everything after it are still changing
        note = _note(opening.group("type"), attributes, reasoning)
        rest = lines[closing][len(_CLOSING) :]
        if note is None:
            shown.append(rest.removeprefix("\n"))  # the block leaves no blank line
        else:
            # A paragraph of its own: Markdown joins lines split by a single newline.
            following = lines[closing + 1] if closing + 1 < len(lines) else ""
            shown.append(note + rest + ("\n" if rest == "\n" and following.strip() else ""))
        i = closing + 1
    return "".join(shown)


def _may_become_opening(partial_line: str) -> bool:
    return any(
        head.startswith(partial_line) or (partial_line.startswith(head) and ">" not in partial_line)
        for head in _HEADS
    )


def _note(kind: str, attributes: dict[str, str], reasoning: Reasoning) -> str | None:
    if kind == "reasoning":
        return None if reasoning == "hide" else _thought(attributes.get("duration"))
    if kind == "tool_calls":
        name = html.unescape(attributes.get("name", "")).replace("`", "").strip()
        return f"_Used tool:_ `{name}`" if name else "_Used a tool_"
    return "_Ran code_"


def _thought(duration: str | None) -> str:
    try:
        seconds = round(float(duration or ""))
    except ValueError:
        return "_Thought_"
    if seconds < 1:
        return "_Thought for less than a second_"
    return f"_Thought for {seconds} second{'' if seconds == 1 else 's'}_"
