"""The sources footer under a final answer: Open WebUI's ``sources`` of the stored
answer, numbered exactly as the web UI numbers them, so the model's ``[1]`` markers
name the right source.

The web UI (``Citations.svelte``, 0.6.15 … 0.12.4) walks ``sources`` in order and,
for each of a source's ``document`` entries, groups on ``metadata[i].source``, else
``source.id``, else "N/A"; the n-th group is ``[n]``. The server numbers the
``<source id="n">`` tags it gives the model the same way, so the numbers agree.

The footer is one Markdown paragraph (``Sources: [1] [name](url) · [2] name · +3
more``): at most ``SHOWN`` entries, never longer than ``max_chars``. Kept to at most
half a platform message, it is never cut by ``bridge.split`` (which prefers the
last paragraph boundary in a message's second half), so it stays whole in the last
message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from bridge.split import open_fence

SHOWN = 5  # entries named; the rest are counted as "+M more"
MAX_CHARS = 1000  # the footer's ceiling, whatever the platform allows
NAME_CHARS = 80  # a longer name is shortened with "…"
URL_CHARS = 400  # a longer URL is left out (the name alone is shown)
LABEL = "Sources:"
SEPARATOR = " · "


@dataclass(frozen=True)
class Source:
    number: int  # as the web UI and the model number it
    name: str
    url: str = ""  # "" when it has no http(s) address


def numbered(sources: Any) -> list[Source]:
    """The answer's sources as the web UI lists them, deduplicated by its grouping."""
    found: dict[str, Source] = {}
    for item in sources if isinstance(sources, list) else []:
        if not isinstance(item, dict) or not item:
            continue
        source = _of(item.get("source"), dict, {})
        metadata = _of(item.get("metadata"), list, [])
        for index in range(len(_of(item.get("document"), list, []))):
            meta = metadata[index] if index < len(metadata) else None
            meta = meta if isinstance(meta, dict) else {}
            # ``??`` in the web UI: only a missing or null value falls through.
            key = meta.get("source")
            if key is None:
                key = source.get("id")
            key = "N/A" if key is None else str(key)
            if key in found:
                continue
            found[key] = Source(len(found) + 1, *_name_and_url(key, source, meta))
    return list(found.values())


def _of(value: Any, kind: type, default: Any) -> Any:
    return value if isinstance(value, kind) else default


def _name_and_url(key: str, source: dict[str, Any], meta: dict[str, Any]) -> tuple[str, str]:
    url = ""
    for candidate in (meta.get("source_url"), key, source.get("url")):
        if isinstance(candidate, str) and _is_http(candidate):
            url = candidate.strip()
            break
    name = ""
    for candidate in (meta.get("name"), meta.get("title"), source.get("name")):
        if isinstance(candidate, str) and candidate.strip():
            name = candidate
            break
    name = _clean(unquote(name or url or key))
    return name, url


def _is_http(value: str) -> bool:
    parts = urlsplit(value.strip())
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _clean(name: str) -> str:
    """A name that cannot break the line's Markdown: one line, no brackets, bounded."""
    name = " ".join(name.split()).replace("[", "(").replace("]", ")")
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1].rstrip() + "…"


def _entry(source: Source) -> str:
    if source.url and len(source.url) <= URL_CHARS:
        # Characters that would end the link early are escaped.
        url = quote(source.url, safe=":/?#@!$&'*+,;=%~-._")
        return f"[{source.number}] [{source.name}]({url})"
    return f"[{source.number}] {source.name}"


def footer(sources: Any, *, max_chars: int = MAX_CHARS, shown: int = SHOWN) -> str:
    """The footer line for ``sources`` ("" when there are none), at most ``max_chars``."""
    listed = numbered(sources)
    if not listed:
        return ""
    limit = min(max_chars, MAX_CHARS)
    for count in range(min(shown, len(listed)), -1, -1):
        parts = [_entry(source) for source in listed[:count]]
        if len(listed) > count:
            parts.append(f"+{len(listed) - count} more")
        line = f"{LABEL} {SEPARATOR.join(parts)}"
        if len(line) <= limit:
            return line
    return ""


def with_footer(text: str, line: str) -> str:
    """``text`` with the footer as its last paragraph (outside any unclosed code block)."""
    if not line:
        return text
    body = text.rstrip()
    fence = open_fence(body)
    if fence is not None:
        opening = fence.lstrip()  # a fence the model left open ends before the footer
        body += "\n" + opening[0] * (len(opening) - len(opening.lstrip(opening[0])))
    return f"{body}\n\n{line}" if body else line
