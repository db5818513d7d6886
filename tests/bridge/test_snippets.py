"""Long code blocks as text files: threshold, names, pointers, streaming."""

from __future__ import annotations

from bridge.reply import Capabilities
from bridge.snippets import SNIPPET_CHARS, extract, threshold


def block(lang: str, chars: int, fence: str = "```") -> tuple[str, str]:
    code = "\n".join(f"line_{i:05d} = {i}" for i in range(chars))[:chars]
    code = code[:-1] + "x"  # never ends with a newline
    return f"{fence}{lang}\n{code}\n{fence}", code


def test_threshold_is_3000_or_a_message_where_that_is_less() -> None:
    assert SNIPPET_CHARS == 3000
    assert threshold(Capabilities(12_000, 1.0)) == 3000
    assert threshold(Capabilities(2000, 1.0)) == 2000


def test_a_long_block_becomes_a_file_with_a_pointer_in_its_place() -> None:
    text, code = block("python", 3500)
    answer = f"Here it is:\n\n{text}\n\nRun it."
    out = extract(answer, 3000)
    assert out.text == (
        "Here it is:\n\n_(code: 3,500 characters, in the attached `snippet.py`)_\n\nRun it."
    )
    (file,) = out.files
    assert (file.name, file.mimetype, file.data) == (
        "snippet.py",
        "text/plain",
        (code + "\n").encode(),
    )


def test_short_blocks_and_text_stay_as_they_are() -> None:
    text, _ = block("sh", 2999)
    answer = f"Intro\n{text}\n```inline``` words\n~~~\nshort\n~~~"
    out = extract(answer, 3000)
    assert out.text == answer and out.files == ()


def test_names_follow_the_language_and_never_repeat() -> None:
    a, _ = block("TypeScript", 4000)
    b, _ = block("typescript", 4000, fence="~~~~")
    c, _ = block("", 4000)
    d, _ = block("weird-lang", 4000)
    out = extract("\n".join([a, b, c, d]), 3000)
    assert [f.name for f in out.files] == [
        "snippet.ts",
        "snippet-2.ts",
        "snippet.txt",
        "snippet-2.txt",
    ]


def test_a_block_still_streaming_shows_a_pointer_and_no_file_yet() -> None:
    code = "x = 1\n" * 600
    out = extract(f"Start\n```py\n{code}", 3000, final=False)
    assert out.text == "Start\n_(code: 3,600 characters so far; a file once the answer is done)_"
    assert out.files == ()
    # The final text of an answer whose fence was never closed still sends the file.
    final = extract(f"Start\n```py\n{code}", 3000)
    assert final.files[0].name == "snippet.py" and "attached `snippet.py`" in final.text
