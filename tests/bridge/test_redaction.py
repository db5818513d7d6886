"""Known secrets are masked in every formatted log line, tracebacks included."""

from __future__ import annotations

import logging

from bridge.redaction import RedactingFormatter, keep_secret


def format_record(message: str, *args: object, exc: BaseException | None = None) -> str:
    record = logging.LogRecord("t", logging.DEBUG, __file__, 1, message, args, None)
    if exc is not None:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    return RedactingFormatter("%(message)s").format(record)


def test_secrets_in_messages_arguments_and_tracebacks_are_masked() -> None:
    keep_secret("xoxb-0000-this-is-secret")
    keep_secret("eyJhbGciOi.payload.sig")
    try:
        raise RuntimeError("Authorization: Bearer eyJhbGciOi.payload.sig refused")
    except RuntimeError as exc:
        text = format_record("headers %s", {"token": "xoxb-0000-this-is-secret"}, exc=exc)
    assert "this-is-secret" not in text and "payload.sig" not in text
    assert "Bearer [redacted] refused" in text and "{'token': '[redacted]'}" in text


def test_short_values_are_not_treated_as_secrets() -> None:
    keep_secret("abc")  # masking "abc" everywhere would garble ordinary text
    assert format_record("abc def") == "abc def"
