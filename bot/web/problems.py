"""The HTTP face of the error tree: RFC 9457 problem+json that also carries Certyneo's body.

Every error answer looks like::

    {"error": "<message>", "code": "<STABLE_CODE>",                 # Certyneo's form
     "type": "{PUBLIC_URL}/errors/<CODE>", "title": "...", "status": 400, "detail": "<message>",
     "errors": [{"field": "recipients.0.email", "message": "..."}]}  # validation only

This module holds the one mapping table from domain codes to HTTP statuses; nothing else in
the code base knows HTTP statuses of errors.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bot.errors import Conflict, FieldError, RateLimited, SignbotError, ValidationFailed

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

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(request, "INTERNAL", "Internal error; it has been logged")
