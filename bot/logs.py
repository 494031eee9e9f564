"""Logging set-up: signing tokens never reach a log line."""

from __future__ import annotations

import logging
import re

_TOKEN_PATH = re.compile(r"(/sign/)[^/?\s\"]+")


def redact(text: str) -> str:
    return _TOKEN_PATH.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    """Rewrites ``/sign/<token>`` in access-log records (uvicorn passes the path in args)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def configure(level: str = "info") -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for name in ("uvicorn.access", "uvicorn.error", "signbot"):
        logging.getLogger(name).addFilter(RedactTokens())
    # Alembic narrates its plugin set-up at INFO on every start; only its warnings matter.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every webhook POST at INFO; our own delivery log says what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
