"""Split a long Markdown answer into platform messages, and put it back together.

A cut falls, by preference, at a block boundary (after a blank line, right
before a code fence or right after one), then after a line break, then after a
line break inside a code block, then after a space; never inside a word unless
a single word is longer than what a message can hold. The whitespace at a cut
stays at the end of the earlier message.

A cut inside a fenced code block closes the fence at the end of the message
(``"\\n" + fence``) and re-opens it at the start of the next (the opening line,
language included, then ``"\\n"``), so every message renders as code. The
markers count toward the limit.

Representation (what ``join_split`` relies on): a boundary carries markers
exactly when the earlier message ends with the close marker of the fence that
is open at that point of the original text *and* the next message starts with
that fence's re-open marker. ``join_split`` replays the original text and
applies that rule; ``split_message`` never makes an unmarked cut that the rule
would misread, so ``join_split(split_message(t, n)) == t`` for every ``t``.

Fences are recognised leniently (any indentation, backticks or tildes, at least
three, the closing run at least as long as the opening one) because answers
often nest code blocks in list items. "Open at a point" means: the prefix up to
that point, read line by line, leaves a fence open; the join side can compute
exactly the same thing from the text it has rebuilt so far.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

__all__ = ["join_split", "open_fence", "split_message"]


@dataclass(frozen=True)
class _Fence:
    start: int  # offset of the opening line in the original text
    indent: str  # whitespace before the fence characters
    opening: str  # the opening line without its indentation, e.g. "```python"
    char: str
    run: int

    @property
    def reopen(self) -> str:
        # Unindented: a message starts at top level, where 4+ spaces would turn
        # the fence into an indented code block.
        return self.opening + "\n"

    def close(self, reopened: bool) -> str:
        # Same indentation as the opening line this message shows, so a fence
        # nested in a list item stays inside it.
        return "\n" + ("" if reopened else self.indent) + self.char * self.run


def _step(state: _Fence | None, line: str, start: int) -> _Fence | None:
    """Fence state after one line (``line`` has no newline; may be partial)."""
    body = line.lstrip(" \t")
    if not body or body[0] not in "`~":
        return state
    char = body[0]
    run = len(body) - len(body.lstrip(char))
    if state is None:
        if run < 3:
            return None
        # A backtick "fence" whose info string has backticks is inline code.
        if char == "`" and "`" in body[run:]:
            return None
        return _Fence(start, line[: len(line) - len(body)], body, char, run)
    if char == state.char and run >= state.run and not body[run:].strip(" \t\r"):
        return None
    return state


class _Replay:
    """Fence state of a text fed piece by piece (used by ``join_split``)."""

    def __init__(self) -> None:
        self.length = 0
        self._line_state: _Fence | None = None  # state at the start of the current line
        self._line = ""  # current (unfinished) line
        self._line_start = 0

    def peek(self, more: str) -> _Fence | None:
        """The fence open after feeding ``more``, without feeding it."""
        state, line, start = self._line_state, self._line, self._line_start
        pieces = more.split("\n")
        offset = self.length + len(pieces[0])
        line += pieces[0]
        for piece in pieces[1:]:
            state = _step(state, line, start)
            start, line = offset + 1, piece
            offset += 1 + len(piece)
        return _step(state, line, start)

    def feed(self, more: str) -> None:
        pieces = more.split("\n")
        offset = self.length + len(pieces[0])
        self._line += pieces[0]
        for piece in pieces[1:]:
            self._line_state = _step(self._line_state, self._line, self._line_start)
            self._line_start, self._line = offset + 1, piece
            offset += 1 + len(piece)
        self.length += len(more)


def open_fence(text: str) -> str | None:
    """The opening line of the fence still open at the end of ``text``, if any."""
    replay = _Replay()
    fence = replay.peek(text)
    return None if fence is None else fence.indent + fence.opening


class _Text:
    """The original text with per-line fence states, for cheap "open at p" queries."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0]
        self.states: list[_Fence | None] = [None]  # state at the start of each line
        self.fence_line: list[bool] = []  # line opens or closes a fence
        # Only a line starting with a fence character can change the state, even
        # partially read; the others need no slicing (long prose lines are common).
        self.maybe_fence: list[bool] = []
        state: _Fence | None = None
        position = 0
        for line in text.split("\n"):
            after = _step(state, line, position)
            self.fence_line.append(after is not state)
            self.maybe_fence.append(line.lstrip(" \t")[:1] in ("`", "~"))
            state = after
            position += len(line) + 1
            self.starts.append(position)
            self.states.append(state)

    def line_of(self, p: int) -> int:
        return bisect_right(self.starts, p) - 1

    def open_at(self, p: int) -> _Fence | None:
        """The fence open after ``text[:p]`` (same rule as ``_Replay``)."""
        line = self.line_of(p)
        if not self.maybe_fence[line]:
            return self.states[line]
        start = self.starts[line]
        return _step(self.states[line], self.text[start:p], start)

    def inside_fence_line(self, p: int) -> bool:
        """``p`` cuts through an opening or closing fence line."""
        line = self.line_of(p)
        return p > self.starts[line] and self.fence_line[line]

    def blank_line_before(self, p: int) -> bool:
        """``text[p-1]`` is a newline ending a whitespace-only line."""
        line = self.line_of(p) - 1
        return not self.text[self.starts[line] : p - 1].strip()


# Cut classes, best first.
_BLOCK, _LINE, _CODE_BLANK, _CODE_LINE, _SPACE, _CODE_SPACE = range(6)


def _classify(doc: _Text, p: int) -> int | None:
    """How good a cut right before ``text[p]`` is; None if it is not a natural cut."""
    text = doc.text
    before, after = text[p - 1], text[p]
    if before == "\n":
        line = doc.line_of(p)
        state = doc.states[line]
        if state is None:
            # Right after a closing fence line, or right before an opening one.
            if doc.fence_line[line - 1] or doc.fence_line[line]:
                return _BLOCK
            if after == "\n":
                return _SPACE  # in the middle of a run of blank lines
            return _BLOCK if doc.blank_line_before(p) else _LINE
        # Inside a fence, but not at its first content line or its closing line:
        # either would leave an empty code block in one of the two messages.
        if state.start == doc.starts[line - 1] or doc.fence_line[line]:
            return None
        return _CODE_BLANK if doc.blank_line_before(p) else _CODE_LINE
    if before in " \t" and not after.isspace() and not doc.inside_fence_line(p):
        return _SPACE if doc.open_at(p) is None else _CODE_SPACE
    return None


def split_message(text: str, limit: int) -> list[str]:
    """Messages of at most ``limit`` characters; ``join_split`` restores ``text``."""
    if limit < 1:
        raise ValueError("limit must be positive")
    doc = _Text(text)
    chunks: list[str] = []
    a = 0
    reopen = ""
    while a < len(text):
        if len(reopen) + len(text) - a <= limit:
            chunks.append(reopen + text[a:])
            break
        p, fence = _choose(doc, a, reopen, limit)
        if fence is not None:
            chunks.append(reopen + text[a:p] + fence.close(reopened=fence.start < a))
            reopen = fence.reopen
        else:
            chunks.append(reopen + text[a:p])
            reopen = ""
        a = p
    return chunks


def _choose(doc: _Text, a: int, reopen: str, limit: int) -> tuple[int, _Fence | None]:
    """Where the message starting at ``a`` ends, and the fence to close there."""
    text = doc.text
    last = min(a + limit - len(reopen), len(text) - 1)

    def attempt(p: int) -> tuple[int, _Fence | None] | None:
        fence = doc.open_at(p)
        # A fence whose markers would eat more than half a message is not
        # re-opened (only absurd opening lines or tiny limits): no progress otherwise.
        if fence is not None and len(fence.reopen) + len(fence.close(True)) > limit // 2:
            fence = None
        size = len(reopen) + p - a
        if fence is not None:
            size += len(fence.close(reopened=fence.start < a))
        if size > limit:
            return None
        if fence is None and _misread(doc, a, p):
            return None
        return p, fence

    by_class: dict[int, list[int]] = {}
    for p in range(last, a, -1):
        kind = _classify(doc, p)
        if kind is not None:
            by_class.setdefault(kind, []).append(p)
    # First only cuts that fill at least half the message, so a boundary near
    # the start does not beat a slightly worse one near the end; then any.
    half = a + (limit - len(reopen)) // 2
    for floor in (half, a):
        for kind in sorted(by_class):
            for p in by_class[kind]:
                if p < floor:
                    break
                found = attempt(p)
                if found is not None:
                    return found
    # A single word longer than a message: cut it, if possible not inside a fence line.
    for avoid_fence_lines in (True, False):
        for p in range(last, a, -1):
            if avoid_fence_lines and doc.inside_fence_line(p):
                continue
            found = attempt(p)
            if found is not None:
                return found
    raise AssertionError("unreachable: a one-character message always fits")


def _misread(doc: _Text, a: int, p: int) -> bool:
    """``join_split`` would take the unmarked cut at ``p`` for a marked one."""
    text = doc.text
    newline = text.rfind("\n", a, p)
    if newline < 0:
        return False
    fence = doc.open_at(newline)
    return (
        fence is not None
        and text[newline:p] == fence.close(reopened=fence.start < a)
        and text.startswith(fence.reopen, p)
    )


def join_split(chunks: list[str]) -> str:
    """The text ``split_message`` was given: drops the added fence markers."""
    replay = _Replay()
    out: list[str] = []
    reopen = ""
    for index, chunk in enumerate(chunks):
        # Set only when this chunk is known to start with it (checked below).
        chunk = chunk[len(reopen) :]
        reopen = ""
        newline = chunk.rfind("\n")
        if index + 1 < len(chunks) and newline >= 0:
            fence = replay.peek(chunk[:newline])
            if (
                fence is not None
                and chunk[newline:] == fence.close(reopened=fence.start < replay.length)
                and chunks[index + 1].startswith(fence.reopen)
            ):
                chunk = chunk[:newline]
                reopen = fence.reopen
        replay.feed(chunk)
        out.append(chunk)
    return "".join(out)
