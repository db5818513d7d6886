"""Reasoning and tool-call blocks in answers, in the exact forms Open WebUI 0.6.15
writes them: folded to one line, unfinished ones hidden, everything else kept."""

from __future__ import annotations

import html
import itertools
import json

import pytest

from bridge.display import visible_text

# -- the blocks as open_webui/utils/middleware.py (0.6.15) serialises them ----


def reasoning(thoughts: str, duration: int | None) -> str:
    """``serialize_content_blocks``, block type "reasoning" (duration None = still thinking)."""
    quoted = "\n".join(
        (f"> {line}" if not line.startswith(">") else line) for line in thoughts.splitlines()
    )
    if duration is None:
        return f'\n<details type="reasoning" done="false">\n<summary>Thinking…</summary>\n{quoted}\n</details>\n'  # noqa: E501 (verbatim)
    return f'\n<details type="reasoning" done="true" duration="{duration}">\n<summary>Thought for {duration} seconds</summary>\n{quoted}\n</details>\n'  # noqa: E501 (verbatim)


def tool_call(name: str, arguments: str, result: str | None) -> str:
    """Block type "tool_calls" with its result, or still executing."""
    call_id = "call_abc"
    args = html.escape(json.dumps(arguments))
    if result is None:
        body = f'\n<details type="tool_calls" done="false" id="{call_id}" name="{name}" arguments="{args}">\n<summary>Executing...</summary>\n</details>'  # noqa: E501 (verbatim)
        return f"\n{body}\n\n"
    res = html.escape(json.dumps(result))
    body = f'\n<details type="tool_calls" done="true" id="{call_id}" name="{name}" arguments="{args}" result="{res}" files="">\n<summary>Tool Executed</summary>\n</details>\n'  # noqa: E501 (verbatim)
    return f"\n{body}\n\n"


def code_run(code: str) -> str:
    output = html.escape(json.dumps({"stdout": "4\n"}))
    return f'\n<details type="code_interpreter" done="true" output="{output}">\n<summary>Analyzed</summary>\n```python\n{code}\n```\n</details>\n'  # noqa: E501 (verbatim)


def text(words: str) -> str:
    return f"{words.strip()}\n"


def stored(*blocks: str) -> str:
    """The whole content, stripped as Open WebUI stores it."""
    return "".join(blocks).strip()


THOUGHTS = "The user asks for 2+2.\nThat is <b>4</b>, see </details> in HTML.\n> already quoted"
PERSON_DETAILS = "<details>\n<summary>Spoiler</summary>\nIt was the butler.\n</details>"
FENCED = (
    'Open WebUI writes:\n\n```html\n<details type="reasoning" done="true" duration="2">\n'
    "<summary>Thought for 2 seconds</summary>\n</details>\n```\nThat is all."
)

CASES: dict[str, tuple[str, str, str]] = {
    # name: (content, visible with "summary", visible with "hide")
    "plain answer": (
        "Just **text**.\n\n- a\n- b",
        "Just **text**.\n\n- a\n- b",
        "Just **text**.\n\n- a\n- b",
    ),
    "reasoning then answer": (
        stored(reasoning(THOUGHTS, 3), text("The answer is 4.")),
        "_Thought for 3 seconds_\n\nThe answer is 4.",
        "The answer is 4.",
    ),
    "one second": (
        stored(reasoning("quick", 1), text("Yes.")),
        "_Thought for 1 second_\n\nYes.",
        "Yes.",
    ),
    "under a second": (
        stored(reasoning("quick", 0), text("Yes.")),
        "_Thought for less than a second_\n\nYes.",
        "Yes.",
    ),
    "still thinking": (stored(reasoning(THOUGHTS, None)), "", ""),
    "text, reasoning, text": (
        stored(text("First."), reasoning("hmm", 2), text("Second.")),
        "First.\n\n_Thought for 2 seconds_\n\nSecond.",
        "First.\n\nSecond.",
    ),
    "tool call done": (
        stored(
            text("Let me check."),
            tool_call("get_weather", '{"city": "Paris"}', "Sunny"),
            text("It is sunny."),
        ),
        "Let me check.\n\n\n_Used tool:_ `get_weather`\n\n\nIt is sunny.",
        "Let me check.\n\n\n_Used tool:_ `get_weather`\n\n\nIt is sunny.",
    ),
    "tool call executing": (
        stored(text("Let me check."), tool_call("get_weather", "{}", None)),
        "Let me check.\n\n\n",
        "Let me check.\n\n\n",
    ),
    "reasoning, tool, answer": (
        stored(reasoning("need weather", 4), tool_call("get_weather", "{}", "Rain"), text("Rain.")),
        "_Thought for 4 seconds_\n\n\n_Used tool:_ `get_weather`\n\n\nRain.",
        "\n\n_Used tool:_ `get_weather`\n\n\nRain.",
    ),
    "code interpreter": (
        stored(text("Computing."), code_run("print(2 + 2)"), text("It is 4.")),
        "Computing.\n\n_Ran code_\n\nIt is 4.",
        "Computing.\n\n_Ran code_\n\nIt is 4.",
    ),
    "a person's details": (PERSON_DETAILS, PERSON_DETAILS, PERSON_DETAILS),
    "a block inside a code fence": (FENCED, FENCED, FENCED),
    "inline mention of the tag": (
        'Use `<details type="reasoning">` to fold.',
        'Use `<details type="reasoning">` to fold.',
        'Use `<details type="reasoning">` to fold.',
    ),
    "unknown details type": (
        '<details type="other" done="true">\nx\n</details>\nok',
        '<details type="other" done="true">\nx\n</details>\nok',
        '<details type="other" done="true">\nx\n</details>\nok',
    ),
}


@pytest.mark.parametrize(("content", "summary", "hide"), CASES.values(), ids=CASES.keys())
def test_visible_text(content: str, summary: str, hide: str) -> None:
    assert visible_text(content) == summary
    assert visible_text(content, "summary") == summary
    assert visible_text(content, "hide") == hide


@pytest.mark.parametrize("content", [c for c, _, _ in CASES.values()], ids=CASES.keys())
@pytest.mark.parametrize("mode", ["summary", "hide"])
def test_every_prefix_shows_a_prefix(content: str, mode: str) -> None:
    """What a thread shows while the content grows never has to be taken back."""
    whole = visible_text(content, mode)  # type: ignore[arg-type]
    for end in range(len(content) + 1):
        part = visible_text(content[:end], mode)  # type: ignore[arg-type]
        assert whole.startswith(part), (content[:end], part)


@pytest.mark.parametrize("mode", ["summary", "hide"])
def test_open_webui_snapshots_only_grow(mode: str) -> None:
    """0.6.x rewrites the block from done="false" to done="true" as thinking ends
    (not a prefix extension): the shown text still only grows."""
    snapshots = [
        stored(reasoning("The user", None)),
        stored(reasoning("The user asks\nfor 2+2", None)),
        stored(reasoning("The user asks\nfor 2+2", 2), text("The")),
        stored(reasoning("The user asks\nfor 2+2", 2), text("The answer is 4.")),
        stored(
            reasoning("The user asks\nfor 2+2", 2),
            text("The answer is 4. Checking."),
            tool_call("calc", "2+2", None),
        ),
        stored(
            reasoning("The user asks\nfor 2+2", 2),
            text("The answer is 4. Checking."),
            tool_call("calc", "2+2", "4"),
            text("Confirmed."),
        ),
    ]
    shown = [visible_text(s, mode) for s in snapshots]  # type: ignore[arg-type]
    for before, after in itertools.pairwise(shown):
        assert after.startswith(before), (before, after)
    assert shown[-1].endswith("Confirmed.")
    assert "<details" not in shown[-1]


def test_tool_name_cannot_break_out_of_its_code_span() -> None:
    content = stored(tool_call("we`ird&amp;name", "{}", "ok"))
    assert visible_text(content) == "_Used tool:_ `weird&name`"
