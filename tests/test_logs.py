"""Signing tokens never reach a log line, from any logger, in messages or tracebacks."""

from __future__ import annotations

import io
import logging

from bot import logs


def test_tokens_are_redacted_everywhere() -> None:
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.RedactTokens())
    root.addHandler(handler)
    try:
        logging.getLogger("signbot.web.deep.child").error("GET %s", "/sign/TOKEN1abc")
        logging.getLogger("some.library").warning("%s %s", "GET", "/sign/TOKEN2abc?x=1")
        try:
            raise ValueError("while serving /sign/TOKEN3abc")
        except ValueError:
            logging.getLogger("anything").exception("failed on /sign/TOKEN4abc")
    finally:
        root.removeHandler(handler)
    out = stream.getvalue()
    assert "TOKEN" not in out
    assert out.count("/sign/[redacted]") == 5
