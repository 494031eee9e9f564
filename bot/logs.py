"""Logging set-up: one line per record, JSON or text, signing tokens never in it.

``configure(level, fmt)`` installs one stderr handler on the root logger (uvicorn's loggers
propagate to it: ``serve`` runs uvicorn with ``log_config=None``). ``fmt`` is ``json`` (one
object per line: ``ts``, ``level``, ``logger``, ``msg``, ``request_id`` inside a request,
``exc`` with a traceback, plus the record's extra fields, e.g. the access line's ``method``,
``route``, ``status``, ``duration_ms``), ``text``, or ``auto``: JSON unless stderr is a
terminal.

The request id lives in a context variable set by ``bot.web.requestid`` for the duration of a
request; :class:`RequestIdFilter` copies it onto every record emitted meanwhile, from any
logger. :class:`RedactTokens` rewrites ``/sign/<token>`` wherever it appears in a record.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

#: ``/sign/<token>``; not the static assets' path, a route template (``/sign/{token}``) or a
#: format placeholder (``"/sign/%s"``: a message that cannot be formatted keeps it).
_TOKEN_PATH = re.compile(r"(/sign/)(?!static/|\{|%)[^/?\s\"]+")

#: The id of the request being handled (None outside a request).
REQUEST_ID: ContextVar[str | None] = ContextVar("signbot_request_id", default=None)

#: Attributes every LogRecord has: anything else on a record is an ``extra`` field.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "color_message",  # uvicorn's coloured twin of the message
    "taskName",
}


def redact(text: str) -> str:
    if "/sign/" not in text:  # nearly always: a substring test is ~10x cheaper than the regex
        return text
    return _TOKEN_PATH.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    """Rewrites ``/sign/<token>`` in every record: the formatted message (a token may be an
    argument of ``"/sign/%s"``, or inside one, as uvicorn passes the path), extra fields and
    the formatted traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit: redact the parts, logging reports it
            if isinstance(record.args, tuple):
                record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
            if isinstance(record.msg, str):
                record.msg = redact(record.msg)
        else:
            record.msg, record.args = redact(message), None
        fields = record.__dict__
        for key, value in fields.items():
            if key not in _STANDARD and isinstance(value, str):
                fields[key] = redact(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on the record (``record.request_id``, None outside)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; every string in it is redacted once more."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():  # the extra fields, in their order
            if key not in _STANDARD and key not in entry:
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [request id]`` (traceback on the following lines)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        request_id = getattr(record, "request_id", None)
        return f"{line} [request {request_id}]" if request_id else line


def use_json(fmt: str, stream: IO[str] | None = None) -> bool:
    """``json``/``text`` as said; ``auto``: JSON unless the stream is a terminal."""
    if fmt == "auto":
        stream = stream or sys.stderr
        return not (hasattr(stream, "isatty") and stream.isatty())
    return fmt == "json"


def build_handler(fmt: str = "auto", stream: IO[str] | None = None) -> logging.Handler:
    """A stream handler (stderr by default) with the format and both filters."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json(fmt, stream) else TextFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactTokens())
    return handler


def configure(level: str = "info", fmt: str = "auto") -> None:
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_signbot", False)]:
        root.removeHandler(old)
    # On the handlers, not the loggers: a logger's filter does not see its children's records.
    for other in root.handlers:  # e.g. a test runner's capture: redacted all the same
        if not any(isinstance(f, RedactTokens) for f in other.filters):
            other.addFilter(RequestIdFilter())
            other.addFilter(RedactTokens())
    handler = build_handler(fmt)
    handler._signbot = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Python's warnings become log records too: in JSON mode every line of output is JSON.
    logging.captureWarnings(True)
    # Alembic narrates its plugin set-up at INFO on every start; only its warnings matter.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every webhook POST at INFO; our own delivery log says what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # APScheduler narrates every run of the per-second outbox job at INFO.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
