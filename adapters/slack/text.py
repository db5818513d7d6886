"""Slack text in and out. Pure functions, tested table-style.

Inbound: Slack delivers ``<@U…>``, ``<#C…|name>``, ``<url|label>``, ``<!here>``
and escapes ``&``, ``<``, ``>``; the model should read what a person sees.

Outbound: ``neutralise_mentions`` runs over every answer before it leaves, so
nothing a model writes pings anyone; ``markdown_to_mrkdwn`` is for the places
that only take mrkdwn (the ``text`` fallback of chat.postMessage/update);
``markdown_text`` and the ``markdown`` block take standard Markdown and need no
conversion.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

__all__ = [
    "decode_inbound",
    "markdown_to_mrkdwn",
    "mentioned_user_ids",
    "neutralise_mentions",
    "strip_bot_mention",
]

# ---------------------------------------------------------------------------
# Inbound
# ---------------------------------------------------------------------------

# Slack escapes every literal "<" and ">", so any angle pair is markup.
_ANGLE = re.compile(r"<([^<>\n]+)>")
_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^<>]*)?>")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_BROADCASTS = {"here", "channel", "everyone"}


def mentioned_user_ids(text: str) -> list[str]:
    """User ids mentioned in ``text``, first occurrence first, no repeats."""
    return list(dict.fromkeys(_USER.findall(text)))


def strip_bot_mention(text: str, bot_user_id: str) -> str:
    """Drop the leading mention that addresses the bot, with the whitespace around it.

    Only the leading one: a mention later in the sentence is part of what the
    person wrote ("ask <@BOT> later") and is decoded like any other.
    """
    mention = re.compile(rf"\s*<@{re.escape(bot_user_id)}(?:\|[^<>]*)?>\s*")
    match = mention.match(text)
    return text[match.end() :] if match else text


def _without_scheme(url: str) -> str:
    for prefix in ("https://", "http://", "mailto:"):
        if url.startswith(prefix):
            return url[len(prefix) :]
    return url


def decode_inbound(text: str, users: Mapping[str, str]) -> str:
    """Slack's markup → what a person reads: names, channels, links, entities.

    ``users`` maps user id → display name. An unknown user falls back to the
    label Slack sent with the mention, then to the id.
    """

    def replace(match: re.Match[str]) -> str:
        target, _, label = match.group(1).partition("|")
        if target.startswith("@"):
            user = target[1:]
            return "@" + (users.get(user) or label.removeprefix("@") or user)
        if target.startswith("#"):
            # Newer clients send "<#C123|>": an empty label.
            return "#" + (label or target[1:])
        if target.startswith("!"):
            command, _, argument = target[1:].partition("^")
            if command in _BROADCASTS:
                return "@" + command
            if command == "subteam":
                name = label or argument
                return name if name.startswith("@") else "@" + name
            if command == "date":
                return label  # the fallback text Slack shows where it cannot format
            return label or "@" + command
        if _SCHEME.match(target):
            if target.startswith("mailto:"):
                address = target[len("mailto:") :]
                return address if label in ("", address) else f"{label} ({address})"
            # Slack auto-links "x.y" as <http://x.y|x.y>: no need to repeat it.
            if label in ("", target, _without_scheme(target)):
                return label or target
            return f"{label} ({target})"
        return label or target

    decoded = _ANGLE.sub(replace, text)
    # &amp; last, so "&amp;lt;" stays the literal text "&lt;".
    return decoded.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# ---------------------------------------------------------------------------
# Outbound
# ---------------------------------------------------------------------------

_ZWSP = "\u200b"
# Slack's special markup: <!here>, <!channel>, <!everyone>, <!subteam^S…>, <@U…>, <@W…>.
_SPECIAL = re.compile(r"<(?=[!@])")
# The typed forms; Slack may link them where it parses names. An e-mail address
# ("ops@here.com") is left alone: the "@" follows a word character there.
_TYPED_BROADCAST = re.compile(r"(?<![\w@])@(?=(?:here|channel|everyone)\b)", re.IGNORECASE)


def neutralise_mentions(text: str) -> str:
    """``text`` as it reads, but with no broadcast or mention Slack would act on.

    A zero-width space after ``<`` (or ``@``) breaks the markup without changing
    what a person sees. Inserting after the trigger character keeps the result of
    a prefix a prefix of the result of the whole (what streaming relies on),
    except for the typed broadcasts, where the stream falls back to edits.
    """
    return _TYPED_BROADCAST.sub("@" + _ZWSP, _SPECIAL.sub("<" + _ZWSP, text))


def _escape(text: str) -> str:
    # Slack documents exactly these three; escaping anything else would show
    # the entity literally.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_url(url: str) -> str:
    # Inside <url|label>, "|" and ">" would end the URL early; percent-encoding
    # keeps the link working.
    return url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")


_FENCE_OPEN = re.compile(r"^[ \t]*(`{3,}|~{3,})(.*)$")
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$|^ {0,3}#{1,6}[ \t]*$")
_BULLET = re.compile(r"^([ \t]*)[-*+][ \t]+(.*)$")
_QUOTE = re.compile(r"^([ \t]{0,3}>[ \t]?)(.*)$")
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")

# Spans whose content must not be touched by emphasis rules, in priority order.
_PROTECTED = re.compile(
    r"(?P<code>(?P<ticks>`+)(?P<code_body>.+?)(?<!`)(?P=ticks)(?!`))"
    r"|(?P<escape>\\(?P<escaped>[!-/:-@\[-`{-~]))"
    r"|(?P<link>(?P<image>!?)\[(?P<label>[^\]]*)\]"
    r"\((?P<url>[^()\s]+(?:\([^()\s]*\)[^()\s]*)*)(?:[ \t]+\"[^\"]*\")?\))"
    r"|(?P<autolink><(?P<auto_url>(?:https?://|mailto:)[^<>\s]+)>)"
    r"|(?P<bare>(?:https?://|www\.)[^\s<>]+)"
)
# Markdown emphasis → mrkdwn. Bold goes through a placeholder so the italic
# rule does not read mrkdwn's "*bold*" as Markdown italics.
_BOLD = "\ue002"
_EMPHASIS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\*\*\*(?![\s*])(.+?)(?<![\s*])\*\*\*"), _BOLD + r"_\1_" + _BOLD),
    (re.compile(r"\*\*(?![\s*])(.+?)(?<![\s*])\*\*"), _BOLD + r"\1" + _BOLD),
    (re.compile(r"(?<!\w)__(?![\s_])(.+?)(?<![\s_])__(?!\w)"), _BOLD + r"\1" + _BOLD),
    (re.compile(r"(?<![\w*])\*(?![\s*])(.+?)(?<![\s*])\*(?![\w*])"), r"_\1_"),
    (re.compile(r"~~(?![\s~])(.+?)(?<![\s~])~~"), r"~\1~"),
]
_SLOT = re.compile("\ue000(\\d+)\ue001")


def _trim_bare_url(url: str) -> tuple[str, str]:
    """Split trailing punctuation (and an unbalanced ")") off a bare URL."""
    end = len(url)
    while end and url[end - 1] in ".,;:!?'\"*_~)":
        if url[end - 1] == ")" and url[:end].count("(") >= url[:end].count(")"):
            break
        end -= 1
    return url[:end], url[end:]


def _inline(text: str, bold: str = "*") -> str:
    """Inline Markdown of one line → mrkdwn; ``bold`` is what bold becomes."""
    slots: list[str] = []

    def keep(rendered: str) -> str:
        slots.append(rendered)
        return f"\ue000{len(slots) - 1}\ue001"

    def protect(match: re.Match[str]) -> str:
        if match.group("code"):
            # Code stays verbatim, but Slack needs &, <, > escaped even there.
            return keep(_escape(match.group("code")))
        if match.group("escape"):
            return keep(_escape(match.group("escaped")))
        if match.group("link"):
            label = _inline(match.group("label"), bold)
            if not _SCHEME.match(match.group("url")):
                # "<!channel|x>" or "<@U1|x>" would ping: only real URLs become links.
                rest = _escape(match.group("url"))
                return keep(f"{label} ({rest})" if label else rest)
            url = _escape_url(match.group("url"))
            return keep(f"<{url}|{label}>" if label else f"<{url}>")
        if match.group("autolink"):
            return keep(f"<{_escape_url(match.group('auto_url'))}>")
        url, rest = _trim_bare_url(match.group("bare"))
        # Left as text: Slack links bare URLs itself. Kept away from the emphasis
        # rules so "__init__" or "*" in a URL survive.
        return keep(_escape(url)) + rest

    protected = _PROTECTED.sub(protect, text)
    converted = _escape(protected)
    for pattern, replacement in _EMPHASIS:
        converted = pattern.sub(replacement, converted)
    converted = converted.replace(_BOLD, bold)
    return _SLOT.sub(lambda m: slots[int(m.group(1))], converted)


def _line(line: str) -> str:
    """One line outside code blocks."""
    if _RULE.match(line):
        return line  # mrkdwn has no rule; "---" reads fine as it is
    heading = _HEADING.match(line)
    if heading:
        # mrkdwn has no headings: bold the title (bold inside it would nest).
        title = _inline(heading.group(1) or "", bold="")
        return f"*{title}*" if title else ""
    quote = _QUOTE.match(line)
    if quote:
        # ">" is kept literal here: it is used for its parsing purpose.
        return quote.group(1) + _line(quote.group(2))
    bullet = _BULLET.match(line)
    if bullet:
        return f"{bullet.group(1)}• {_inline(bullet.group(2))}"
    return _inline(line)


def _code_closer(opening: re.Match[str]) -> Callable[[str], bool]:
    run = opening.group(1)

    def closes(line: str) -> bool:
        body = line.strip(" \t\r")
        return body.startswith(run[0] * len(run)) and not body.strip(run[0])

    return closes


def markdown_to_mrkdwn(md: str) -> str:
    """Standard Markdown → Slack mrkdwn, for fields that only accept mrkdwn.

    Bold, italics, strike, links, headings and bullets are translated; code
    spans and blocks keep their content (escaped, as Slack requires everywhere)
    and blocks lose their language, which mrkdwn cannot show.
    """
    out: list[str] = []
    closes: Callable[[str], bool] | None = None
    for line in md.split("\n"):
        if closes is not None:
            if closes(line):
                out.append("```")
                closes = None
            else:
                out.append(_escape(line))
            continue
        opening = _FENCE_OPEN.match(line)
        if opening and not (opening.group(1)[0] == "`" and "`" in opening.group(2)):
            out.append("```")
            closes = _code_closer(opening)
            continue
        out.append(_line(line))
    if closes is not None:
        out.append("```")  # Markdown closes a block at the end; mrkdwn needs it said
    return "\n".join(out)
