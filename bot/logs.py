"""Logging set-up: signing tokens never reach a log line."""

from __future__ import annotations

import logging
import re

_TOKEN_PATH = re.compile(r"(/sign/)[^/?\s\"]+")


def redact(text: str) -> str:
    return _TOKEN_PATH.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    """Rewrites ``/sign/<token>`` in every record: message, arguments (uvicorn passes the
    path there) and the formatted traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def configure(level: str = "info") -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # On the handlers, not the loggers: a logger's filter does not see its children's records.
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactTokens())
    # Alembic narrates its plugin set-up at INFO on every start; only its warnings matter.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every webhook POST at INFO; our own delivery log says what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
