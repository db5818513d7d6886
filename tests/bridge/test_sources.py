"""The sources footer: the web UI's numbering, names and links, "+M more", length."""

from __future__ import annotations

import random
from typing import Any

import pytest

from bridge.sources import MAX_CHARS, SHOWN, Source, footer, numbered, with_footer
from bridge.split import join_split, split_message


def doc_source(name: str, file_id: str, chunks: int = 1, **meta: Any) -> dict[str, Any]:
    """A knowledge document as Open WebUI stores it in an answer's ``sources``."""
    return {
        "source": {"id": file_id, "name": name, "type": "file"},
        "document": [f"{name} part {i}" for i in range(chunks)],
        "metadata": [{"source": file_id, "name": name, **meta} for _ in range(chunks)],
    }


def web_source(url: str, title: str) -> dict[str, Any]:
    return {
        "source": {"id": "web", "name": "search query"},
        "document": ["page text"],
        "metadata": [{"source": url, "title": title}],
    }


def test_numbered_groups_as_the_web_ui_does() -> None:
    sources = [
        doc_source("guide.md", "f1", chunks=3),
        doc_source("faq.txt", "f2"),
        doc_source("guide.md", "f1"),  # the same document again: same number
        {},  # the web UI skips empty entries
        web_source("https://example.org/a", "Example page"),
    ]
    assert numbered(sources) == [
        Source(1, "guide.md"),
        Source(2, "faq.txt"),
        Source(3, "Example page", "https://example.org/a"),
    ]


def test_documents_of_one_source_group_on_their_metadata() -> None:
    # One collection source carrying two files: two numbers, as the model saw them.
    collection = {
        "source": {"id": "kb1", "name": "Handbook", "type": "collection"},
        "document": ["a", "b", "c"],
        "metadata": [
            {"source": "f-a", "name": "a.pdf"},
            {"source": "f-b", "name": "b.pdf"},
            {"source": "f-a", "name": "a.pdf"},
        ],
    }
    assert numbered([collection]) == [Source(1, "a.pdf"), Source(2, "b.pdf")]


def test_without_metadata_source_the_source_id_groups() -> None:
    item = {"source": {"id": "s1", "name": "Notes"}, "document": ["x", "y"], "metadata": [{}]}
    assert numbered([item, {"source": {"name": "?"}, "document": ["z"]}]) == [
        Source(1, "Notes"),
        Source(2, "?"),
    ]


def test_names_are_decoded_and_cannot_break_the_line() -> None:
    item = doc_source("my%20report%20[final].pdf", "f1")
    item["metadata"][0]["name"] = "my%20report%20[final]\n.pdf"
    (source,) = numbered([item])
    assert source.name == "my report (final) .pdf"
    long = numbered([doc_source("x" * 300, "f2")])[0].name
    assert len(long) == 80 and long.endswith("…")


def test_footer_numbers_names_and_links() -> None:
    line = footer([doc_source("guide.md", "f1"), web_source("https://e.org/a b", "Page")])
    assert line == "Sources: [1] guide.md · [2] [Page](https://e.org/a%20b)"


def test_footer_shows_at_most_five_then_counts_the_rest() -> None:
    sources = [doc_source(f"doc{i}.md", f"f{i}") for i in range(1, 9)]
    line = footer(sources)
    assert line.startswith("Sources: [1] doc1.md · [2] doc2.md")
    assert f"[{SHOWN}] doc{SHOWN}.md · +3 more" in line and "doc6" not in line


def test_no_sources_no_footer() -> None:
    assert footer([]) == footer(None) == footer([{}]) == ""
    assert with_footer("Answer.", "") == "Answer."


@pytest.mark.parametrize("max_chars", [60, 200, 1000])
def test_footer_never_longer_than_allowed(max_chars: int) -> None:
    sources = [web_source(f"https://example.org/{'p' * 300}/{i}", "T" * 70) for i in range(9)]
    line = footer(sources, max_chars=max_chars)
    assert 0 < len(line) <= max_chars
    assert line.startswith("Sources:") and line.endswith("more")
    assert len(footer(sources, max_chars=100_000)) <= MAX_CHARS


def test_footer_closes_a_code_block_the_model_left_open() -> None:
    assert with_footer("Code:\n````py\nx = 1\n", "Sources: [1] a") == (
        "Code:\n````py\nx = 1\n````\n\nSources: [1] a"
    )


@pytest.mark.parametrize("limit", [2000, 12_000])
def test_split_keeps_the_footer_whole_in_the_last_message(limit: int) -> None:
    rng = random.Random(limit)
    line = footer([doc_source(f"document-{i}.md", f"f{i}") for i in range(9)], max_chars=limit // 2)
    for _ in range(300):
        words = " ".join(rng.choice(["alpha", "beta", "gamma\n", "delta\n\n"]) for _ in range(4000))
        text = with_footer(words[: rng.randint(limit // 2, limit * 3)], line)
        parts = split_message(text, limit)
        assert join_split(parts) == text
        assert parts[-1].endswith(line) and line in parts[-1], (len(parts[-1]), parts[-1][-200:])
