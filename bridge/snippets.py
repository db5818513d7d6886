"""Long code blocks go as text files instead of splitting over many messages.

A fenced code block whose code is longer than ``threshold`` characters is taken out
of the answer and becomes a text file (``snippet.py``, named from the fence's
language; Slack and Discord both show text files inline); a one-line pointer takes
its place. The threshold is ``SNIPPET_CHARS`` (3,000), or a platform message's
length where that is less (Discord's 2,000): a block that could not fit one message
is never split. While an answer streams, a block already over the threshold shows as
the pointer too, so the thread never fills with its pieces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bridge.reply import Capabilities, OutFile

SNIPPET_CHARS = 3000
_FENCE = re.compile(r"^([ \t]*)(`{3,}|~{3,})(.*)$")
_EXTENSIONS = {
    "python": "py",
    "py": "py",
    "python3": "py",
    "javascript": "js",
    "js": "js",
    "jsx": "jsx",
    "typescript": "ts",
    "ts": "ts",
    "tsx": "tsx",
    "sh": "sh",
    "bash": "sh",
    "shell": "sh",
    "zsh": "sh",
    "console": "txt",
    "json": "json",
    "yaml": "yaml",
    "yml": "yaml",
    "toml": "toml",
    "ini": "ini",
    "html": "html",
    "xml": "xml",
    "css": "css",
    "sql": "sql",
    "go": "go",
    "rust": "rs",
    "rs": "rs",
    "java": "java",
    "kotlin": "kt",
    "c": "c",
    "cpp": "cpp",
    "c++": "cpp",
    "csharp": "cs",
    "cs": "cs",
    "ruby": "rb",
    "rb": "rb",
    "php": "php",
    "swift": "swift",
    "markdown": "md",
    "md": "md",
    "diff": "diff",
    "csv": "csv",
}


def threshold(capabilities: Capabilities) -> int:
    """Code longer than this goes as a file on a platform with these limits."""
    return max(1, min(SNIPPET_CHARS, capabilities.max_message_length))


@dataclass(frozen=True)
class Snippets:
    text: str  # the answer with a pointer line for each long block
    files: tuple[OutFile, ...]


def extract(text: str, limit: int, *, final: bool = True) -> Snippets:
    """``text`` with each code block over ``limit`` characters replaced by a pointer,
    and those blocks as files. ``final=False`` (an answer still streaming): a block
    still open is only replaced, its file comes with the final text."""
    lines = text.split("\n")
    out: list[str] = []
    files: list[OutFile] = []
    names: set[str] = set()
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None or (match.group(2)[0] == "`" and "`" in match.group(3)):
            out.append(lines[index])
            index += 1
            continue
        indent, run, info = match.groups()
        end = _closing(lines, index + 1, run)
        code = "\n".join(lines[index + 1 : end])
        if len(code) <= limit:
            out.extend(lines[index : end + 1])
            index = end + 1
            continue
        name = _name(info, names)
        closed = end < len(lines)
        if closed or final:
            files.append(OutFile(name, "text/plain", (code + "\n").encode(), title=name))
            out.append(f"{indent}_(code: {len(code):,} characters, in the attached `{name}`)_")
        else:
            out.append(
                f"{indent}_(code: {len(code):,} characters so far; a file once the answer is done)_"
            )
        index = end + 1
    return Snippets("\n".join(out), tuple(files))


def _closing(lines: list[str], start: int, run: str) -> int:
    """The index of the line closing a fence of ``run``; ``len(lines)`` if none."""
    for index in range(start, len(lines)):
        match = _FENCE.match(lines[index])
        if (
            match is not None
            and match.group(2)[0] == run[0]
            and len(match.group(2)) >= len(run)
            and not match.group(3).strip()
        ):
            return index
    return len(lines)


def _name(info: str, taken: set[str]) -> str:
    words = info.strip().split()
    language = words[0].lower() if words else ""
    extension = _EXTENSIONS.get(language, "txt")
    name, number = f"snippet.{extension}", 1
    while name in taken:
        number += 1
        name = f"snippet-{number}.{extension}"
    taken.add(name)
    return name
