"""The HTTP face of the error tree: RFC 9457 problem+json that also carries Certyneo's body.

Every error answer looks like::

    {"error": "<message>", "code": "<STABLE_CODE>",                 # Certyneo's form
     "type": "{PUBLIC_URL}/errors/<CODE>", "title": "...", "status": 400, "detail": "<message>",
     "errors": [{"field": "recipients.0.email", "message": "..."}]}  # validation only

This module holds the one mapping table from domain codes to HTTP statuses; nothing else in
the code base knows HTTP statuses of errors.

**Database unreachable → 503, not 500.** A request that meets a *connection-level* database
error (the server is down, restarting, refusing connections, or dropped the connection; the
pool timed out waiting for one) is not a bug: it answers 503 ``UNAVAILABLE`` with
``Retry-After: 5`` — problem+json, or a small HTML page under ``/sign/`` where a person is
looking — and logs one WARNING per :data:`UNAVAILABLE_LOG_SECONDS` (with the count of such
answers), not a traceback per request. Any other database error (bad SQL, a constraint) is a
bug: 500 ``INTERNAL``, logged with its traceback. :func:`database_unavailable` is the rule.
Any :class:`~bot.errors.Unavailable` (document storage failing, say) is answered the same
way, with its own throttled warning carrying the error's own words.
"""

from __future__ import annotations

import errno
import json
import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from bot.db import DATABASE_ERRORS, database_unavailable
from bot.errors import (
    Conflict,
    FieldError,
    RateLimited,
    SignbotError,
    Unavailable,
    ValidationFailed,
)

log = logging.getLogger("signbot.web")

PROBLEM_JSON = "application/problem+json"

#: code → (HTTP status, title)
STATUS: dict[str, tuple[int, str]] = {
    "VALIDATION_ERROR": (400, "Invalid request"),
    "UNAUTHORIZED": (401, "Unauthorized"),
    "FORBIDDEN": (403, "Forbidden"),
    "NOT_FOUND": (404, "Not found"),
    "METHOD_NOT_ALLOWED": (405, "Method not allowed"),
    "CONFLICT": (409, "Conflict"),
    "IDEMPOTENCY_KEY_REUSED": (409, "Idempotency key reused"),
    "GONE": (410, "Gone"),
    "PAYLOAD_TOO_LARGE": (413, "Payload too large"),
    "UNSUPPORTED_MEDIA_TYPE": (415, "Unsupported media type"),
    "RATE_LIMITED": (429, "Too many requests"),
    "INTERNAL": (500, "Internal error"),
    "UNAVAILABLE": (503, "Service unavailable"),
}


def problem(
    request: Request,
    code: str,
    message: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    status, title = STATUS.get(code, STATUS["INTERNAL"])
    base = getattr(request.app.state, "public_url", "")
    body: dict[str, Any] = {
        "error": message,
        "code": code,
        "type": f"{base}/errors/{code}",
        "title": title,
        "status": status,
        "detail": message,
    }
    if errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


#: What a client is told to wait before retrying while the database is unreachable.
RETRY_AFTER_SECONDS = 5
#: At most one warning per this many seconds while requests meet an unreachable database.
UNAVAILABLE_LOG_SECONDS = 10.0

#: OSErrors that say the machine's disk is in trouble (full, over quota, read-only, failing).
_DISK_TROUBLE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})

_UNAVAILABLE_MESSAGE = "The service is temporarily unavailable; retry in a few seconds"

#: The signer pages' languages (bot.signing) — the page shown there cannot read the envelope's.
_UNAVAILABLE_HTML = {
    "en": ("Temporarily unavailable", "Please try again in a minute."),
    "fr": ("Service momentanément indisponible", "Veuillez réessayer dans une minute."),
    "de": ("Vorübergehend nicht verfügbar", "Bitte versuchen Sie es in einer Minute erneut."),
    "nl": ("Tijdelijk niet beschikbaar", "Probeer het over een minuut opnieuw."),
    "vi": ("Tạm thời không khả dụng", "Vui lòng thử lại sau một phút."),
}
_HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _unavailable_page(request: Request) -> HTMLResponse:
    """A plain page for a person at a signing link (no traceback, no JSON)."""
    lang = "en"
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in _UNAVAILABLE_HTML:
            lang = tag
            break
    title, body = _UNAVAILABLE_HTML[lang]
    html = (
        f'<!doctype html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title></head>\n<body><h1>{title}</h1><p>{body}</p></body></html>\n"
    )
    headers = {**_HTML_HEADERS, "Retry-After": str(RETRY_AFTER_SECONDS)}
    return HTMLResponse(html, status_code=503, headers=headers)


class _UnavailableLog:
    """One WARNING per interval while a backend (``what``) is unusable, counting the 503s."""

    def __init__(self, what: str, interval: float = UNAVAILABLE_LOG_SECONDS) -> None:
        self.what = what
        self.interval = interval
        self._next = 0.0
        self._suppressed = 0

    def __call__(self, request: Request, cause: BaseException, reason: str) -> None:
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return
        self._next = now + self.interval
        log.warning(
            "%s: answering 503 (%s on %s %s: %s); %d more 503s for this since the last warning",
            self.what,
            type(cause).__name__,
            request.method,
            request.url.path,
            (reason.strip().splitlines() or [""])[0],
            self._suppressed,
        )
        self._suppressed = 0


def _unavailable(request: Request, message: str) -> Response:
    """503 with ``Retry-After``: problem+json, or a page where a person is signing."""
    if request.url.path.startswith("/sign/"):
        return _unavailable_page(request)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return problem(request, Unavailable.code, message, headers=headers)


def _loc_to_field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    # Pydantic names the failing member of a union or a function validator; drop those.
    parts = [p for p in parts if not p.startswith(("function-", "union[", "json-or-python"))]
    return ".".join(parts) or "body"


def _clean_message(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "invalid value"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if err.get("type") == "json_invalid":
        return "The body is not valid JSON"
    if err.get("type") == "missing":
        return "is required"
    return msg


def field_errors_from_pydantic(errors: list[dict[str, Any]]) -> list[FieldError]:
    out: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for err in errors:
        fe = FieldError(_loc_to_field(err.get("loc", ())), _clean_message(err))
        if (fe.field, fe.message) not in seen:
            seen.add((fe.field, fe.message))
            out.append(fe)
    return out


def install_problem_handlers(app: FastAPI) -> None:
    """Map every error, ours and the framework's, to problem+json; nothing leaks a traceback."""

    @app.exception_handler(SignbotError)
    async def _domain(request: Request, exc: SignbotError) -> JSONResponse:
        headers = None
        if isinstance(exc, RateLimited | Conflict) and exc.retry_after is not None:
            headers = {"Retry-After": str(exc.retry_after)}
        errors = exc.errors if isinstance(exc, ValidationFailed) else None
        return problem(request, exc.code, exc.message, errors, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors_from_pydantic(list(exc.errors()))
        if any(e.message == "The body is not valid JSON" for e in errors):
            return problem(request, "VALIDATION_ERROR", "The body is not valid JSON")
        summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        return problem(request, "VALIDATION_ERROR", summary or "Invalid request", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            400: "VALIDATION_ERROR",
            401: "UNAUTHORIZED",
            403: "FORBIDDEN",
            404: "NOT_FOUND",
            405: "METHOD_NOT_ALLOWED",
            409: "CONFLICT",
            413: "PAYLOAD_TOO_LARGE",
            415: "UNSUPPORTED_MEDIA_TYPE",
        }.get(exc.status_code, "INTERNAL")
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No route for {request.method} {request.url.path}"
        return problem(request, code, detail, headers=getattr(exc, "headers", None))

    database_log = _UnavailableLog("database unreachable")
    backend_log = _UnavailableLog("a backing service is unavailable")

    async def _database(request: Request, exc: Exception) -> Response:
        if not database_unavailable(exc):
            return await _unexpected(request, exc)
        cause = getattr(exc, "orig", None) or exc
        database_log(request, cause, str(cause))
        return _unavailable(request, _UNAVAILABLE_MESSAGE)

    @app.exception_handler(Unavailable)
    async def _backend(request: Request, exc: Unavailable) -> Response:
        """E.g. document storage failing: its own words (``str``) go to the log only."""
        backend_log(request, exc, str(exc))
        return _unavailable(request, exc.message)

    # Handled where the routes run (inside the middlewares, so RateLimit-* headers are kept).
    for database_error in DATABASE_ERRORS:
        app.add_exception_handler(database_error, _database)

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError) -> Response:
        """The machine's disk in trouble (an upload's temporary file on a full disk, say) is
        503: the operator must act, the client can only come back later. Other OSErrors are
        bugs like any exception."""
        if exc.errno not in _DISK_TROUBLE:
            return await _unexpected(request, exc)
        backend_log(request, exc, f"the server's disk: {exc}")
        return _unavailable(request, _UNAVAILABLE_MESSAGE)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if database_unavailable(exc):  # raised outside the routes (a middleware)
            return await _database(request, exc)
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(request, "INTERNAL", "Internal error; it has been logged")
