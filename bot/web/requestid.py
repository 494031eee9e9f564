"""Request id, access log and latency histogram: one pure ASGI middleware, outermost of ours.

- The id: the client's ``X-Request-Id`` when it is a sane token (1 to 64 of ``[A-Za-z0-9._-]``),
  else 32 fresh random hex digits. It is set in ``bot.logs.REQUEST_ID`` for the whole request, so
  every log line written meanwhile carries it, and echoed in the ``X-Request-Id`` answer header.
- One access line per request on the ``signbot.access`` logger (uvicorn's own access log is
  off): client, method, path (``/sign/<token>`` redacted, no query string: OAuth codes travel
  there), status, duration; in JSON the same as fields, with the route template.
- ``signbot_http_request_duration_seconds{method, route, status}``: ``route`` is the matched
  route's template (``/api/v1/envelopes/{envelope_id}``, ``/sign/{token}``), found in the scope
  the router filled in; ``other`` when nothing matched. Never the raw path.
"""

from __future__ import annotations

import logging
import random
import re
import time
from typing import Any
from urllib.parse import quote

from bot import metrics
from bot.logs import REQUEST_ID

access_log = logging.getLogger("signbot.access")

_SANE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_HEADER = b"x-request-id"

#: Characters a path keeps when it is logged (RFC 3986 pchar and "/"); the rest is escaped.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == _HEADER:
            candidate = value.decode("latin-1")
            if _SANE.fullmatch(candidate):
                return candidate
            break
    # 128 random bits as 32 hex digits, like a uuid4's hex; Python's generator (reseeded after
    # a fork) is ~6x cheaper than os.urandom here, and a correlation id is no secret
    return f"{random.getrandbits(128):032x}"


class RequestContext:
    def __init__(self, app: Any, *, observe: bool = True) -> None:
        """``observe``: feed the latency histogram (off when metrics are disabled)."""
        self.app = app
        self.observe = observe
        self._histograms: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope["headers"])
        header = (_HEADER, request_id.encode())
        reset = REQUEST_ID.set(request_id)
        status = 500  # unless the app answers: an exception reaches the server's error handler
        started = time.perf_counter()

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        metrics.HTTP_IN_FLIGHT.inc()
        failed = True
        try:
            await self.app(scope, receive, send_with_id)
            failed = False
        finally:
            metrics.HTTP_IN_FLIGHT.dec()
            self._done(scope, status, time.perf_counter() - started, request_id)
            if not failed:
                # After a failure the id stays set in this request's task, so the server's
                # traceback line carries it too.
                REQUEST_ID.reset(reset)

    def _done(self, scope: dict[str, Any], status: int, seconds: float, request_id: str) -> None:
        method = scope["method"]
        if method not in _METHODS:
            method = "other"
        route = getattr(scope.get("route"), "path", None) or "other"
        if self.observe:
            key = (method, route, status)
            child = self._histograms.get(key)
            if child is None:
                child = self._histograms[key] = metrics.HTTP_DURATION.labels(
                    method, route, str(status)
                )
            child.observe(seconds)
        if access_log.isEnabledFor(logging.INFO):
            client = scope.get("client")
            ip = client[0] if client else "-"
            ms = round(seconds * 1000, 2)
            # percent-encoded as on the wire: a decoded %0A must not start a forged line
            path = quote(scope["path"], safe=_PATH_SAFE)
            access_log.info(
                '%s "%s %s" %d %.1f ms',
                ip,
                method,
                path,
                status,
                ms,
                extra={
                    "method": method,
                    "route": route,
                    "path": path,
                    "status": status,
                    "duration_ms": ms,
                    "client": ip,
                },
            )
