"""Log lines as an operator's pipeline reads them (adapters.logs)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from adapters.logs import formatter
from bridge.events import ThreadKey
from bridge.logcontext import TurnFields, chat_known, turn_context
from bridge.redaction import keep_secret

KEY = ThreadKey("slack", "T1", "C1", "1700000000.000100")


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(TurnFields())
    handler.setFormatter(formatter("json"))
    logger = logging.getLogger("tests.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def parsed(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_is_one_json_object_naming_its_turn(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = lines
    log.info("outside any turn")
    with turn_context(7, KEY, None):
        log.info("asking")
        chat_known("chat-1")
        log.warning("answer %s took long", "a1")
    outside, asking, took = parsed(stream)
    assert outside["turn"] is None and outside["message"] == "outside any turn"
    assert {k: asking[k] for k in ("level", "logger", "turn", "thread", "platform", "chat_id")} == {
        "level": "INFO",
        "logger": "tests.logs",
        "turn": 7,
        "thread": "slack/T1/C1/1700000000.000100",
        "platform": "slack",
        "chat_id": None,
    }
    assert (took["chat_id"], took["message"], took["level"]) == (
        "chat-1",
        "answer a1 took long",
        "WARNING",
    )
    assert str(asking["time"])[:2] == "20"  # an ISO date


def test_secrets_are_masked_in_messages_and_tracebacks(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = lines
    keep_secret("xoxb-very-secret-token")
    try:
        raise RuntimeError("refused xoxb-very-secret-token")
    except RuntimeError:
        log.exception("call with %s failed", "xoxb-very-secret-token")
    assert "xoxb-very-secret-token" not in stream.getvalue()
    (line,) = parsed(stream)
    assert "[redacted]" in str(line["message"]) and "RuntimeError" in str(line["exc_info"])
