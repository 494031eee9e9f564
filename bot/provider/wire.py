"""The wire: one API call with the retry policy, and the error for an answer that is not 2xx.

Retry policy (``retries`` extra attempts, 3 by default):

* **Idempotent requests** — GET, DELETE, and POSTs carrying an ``Idempotency-Key`` — are retried
  on connect errors, timeouts, broken connections and 502/503/504, after 0.2 s, 0.4 s, 0.8 s…
  (doubling, ±20 % jitter). A ``Retry-After`` on a 502/503/504 is honoured instead of the
  backoff.
* **429** is retried for every request (the provider refused it unprocessed), waiting what
  ``Retry-After`` says (seconds or an HTTP date); a wait longer than ``MAX_WAIT`` (10 s) is not
  sat through: :class:`RateLimited` is raised at once with ``retry_after`` for the user.
* A **POST without a key** is retried only when it never left (connect error, connect or pool
  timeout); once sent, a lost answer might hide a done deed, so it is not repeated.

When the attempts run out: :class:`ProviderUnavailable` (or :class:`RateLimited`) with a
sentence fit for a Slack user. The worst case of one call is about
``(retries + 1) * timeout + 1.4 s`` of backoff (``timeout`` applies to each of connect, read,
write and pool), or 10 s per wait on 429.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib.metadata
import math
import random
import time
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from bot.provider.errors import (
    FieldError,
    NotSupported,
    ProviderAuthError,
    ProviderConflict,
    ProviderError,
    ProviderNotFound,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)

M = TypeVar("M", bound=BaseModel)

API_PATH = "/api/v1"
BACKOFF = 0.2
"""First wait between attempts, in seconds; doubled each time."""
MAX_WAIT = 10.0
"""Longest single wait the client sits through (``Retry-After`` included)."""
RETRY_STATUSES = frozenset({502, 503, 504})
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Transport errors raised before any byte of the request left: always safe to retry."""


def _version() -> str:
    try:
        return importlib.metadata.version("signbot")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source checkout
        return "0"


def _api_base(base_url: str) -> str:
    """``https://host`` or ``https://host/api/v1`` (any prefix before it) → the API's base."""
    url = base_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ValueError("base_url must be an http(s) URL such as https://certyneo.com")
    return url if parts.path.endswith(API_PATH) else url + API_PATH


def _backoff(attempt: int) -> float:
    return BACKOFF * (2**attempt) * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not crypto


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), when present and sane."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _text(value: Any, limit: int = 500) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _field_errors(raw: Any) -> list[FieldError]:
    """``[{field, message}]`` (ours), ``[{loc|path, msg}]`` or ``{field: [messages]}``."""
    out: list[FieldError] = []
    if isinstance(raw, dict):
        for field, messages in raw.items():
            for message in messages if isinstance(messages, list) else [messages]:
                if _text(message):
                    out.append(FieldError(str(field), _text(message) or ""))
    elif isinstance(raw, list):
        for item in raw:
            if isinstance(item, str) and _text(item):
                out.append(FieldError("", _text(item) or ""))
            elif isinstance(item, dict):
                field = item.get("field") or item.get("path") or item.get("loc") or ""
                if isinstance(field, list):
                    field = ".".join(str(p) for p in field)
                message = _text(item.get("message") or item.get("msg") or item.get("detail"))
                if message:
                    out.append(FieldError(str(field), message))
    return out[:50]


class Wire:
    """An ``httpx.AsyncClient`` on the API's base URL, with the key, the retry policy and the
    error mapping. Paths are relative to the base (``"envelopes"``) or absolute URLs."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        retries: int,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        key = api_key.strip().removeprefix("Bearer ").strip()
        if not key or any(c in key for c in "\r\n"):
            raise ValueError("api_key is empty or malformed")
        self.base_url = _api_base(base_url)
        self.origin = self.base_url.removesuffix(API_PATH)
        """The base URL without ``/api/v1``: where ``/openapi.json`` lives."""
        self.host = urlsplit(self.base_url).netloc.rpartition("@")[2]
        self._key = key
        self._timeout = timeout
        self._retries = max(0, retries)
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers={
                "Authorization": f"Bearer {key}",
                "User-Agent": f"signbot-bot/{_version()}",
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        parts = urlsplit(self.base_url)
        return f"Wire('{parts.scheme}://{self.host}{parts.path}')"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        idempotency_key: str | None = None,
        what: str = "object",
        feature: str | None = None,
        accept: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One API call with the retry policy; a non-2xx answer raises its error."""
        headers: dict[str, str] = {}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if accept:
            headers["Accept"] = accept
        idempotent = method in ("GET", "HEAD", "DELETE", "PUT") or bool(idempotency_key)
        response = await self.send(method, path, idempotent=idempotent, headers=headers, **kwargs)
        if feature and response.status_code == 405:
            raise NotSupported(feature)
        if not response.is_success:
            raise self.error(response, what)
        return response

    async def send(
        self, method: str, path: str, *, idempotent: bool, **kwargs: Any
    ) -> httpx.Response:
        """Send with the retry policy; returns the last answer, whatever
        its status; raises :class:`ProviderUnavailable` when no answer came."""
        attempt = 0
        while True:
            request = self._http.build_request(method, path, **kwargs)
            try:
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                if attempt < self._retries and (idempotent or isinstance(exc, _UNSENT)):
                    await asyncio.sleep(_backoff(attempt))
                    attempt += 1
                    continue
                raise self._unreachable(exc) from None
            status = response.status_code
            if attempt < self._retries and (
                status == 429 or (idempotent and status in RETRY_STATUSES)
            ):
                wait = _retry_after(response)
                if wait is None or wait <= MAX_WAIT:
                    await response.aclose()
                    await asyncio.sleep(_backoff(attempt) if wait is None else wait)
                    attempt += 1
                    continue
            return response

    def _unreachable(self, exc: httpx.TransportError) -> ProviderUnavailable:
        where = f"The signing service at {self.host}"
        if isinstance(exc, httpx.TimeoutException):
            text = f"{where} did not answer within {self._timeout:g} seconds"
        elif isinstance(exc, httpx.ConnectError):
            text = f"{where} could not be reached"
        else:
            text = f"The connection to the signing service at {self.host} broke before it answered"
        return ProviderUnavailable(f"{text}; try again in a few minutes.")

    def _scrub(self, text: str | None) -> str | None:
        return text.replace(self._key, "[API key]") if text else text

    def error(self, response: httpx.Response, what: str = "object") -> ProviderError:
        """The error for a non-2xx answer, with a sentence a Slack user can read."""
        status = response.status_code
        detail, code, errors = self._problem(response)
        if status == 429:
            wait = _retry_after(response)
            later = f"in {max(1, round(wait))} seconds" if wait is not None else "in a minute"
            return RateLimited(
                f"The signing service is receiving too many requests from signbot; try again "
                f"{later}.",
                status,
                code or "RATE_LIMITED",
                wait,
            )
        if status in RETRY_STATUSES:
            return ProviderUnavailable(
                f"The signing service is unavailable right now (HTTP {status}); try again in "
                "a few minutes.",
                status,
                code,
            )
        if status >= 500:
            suffix = f": {detail}" if detail else ""
            return ProviderError(
                f"The signing service failed with an internal error (HTTP {status}){suffix}",
                status,
                code,
            )
        if not 400 <= status < 500:
            return ProviderError(
                f"The signing service gave an unexpected answer (HTTP {status}); check "
                "signbot's provider URL.",
                status,
                code,
            )
        because = f": {detail}" if detail else ""
        if status == 401:
            message = f"The signing service did not accept signbot's API key{because}"
            return ProviderAuthError(message, status, code, detail, errors)
        if status == 403:
            message = f"The signing service does not let signbot's API key do this{because}"
            return ProviderAuthError(message, status, code, detail, errors)
        if status == 404:
            message = f"The signing service has no such {what}{because}"
            return ProviderNotFound(message, status, code, detail, errors)
        if status == 410:
            message = f"The signing service no longer keeps this {what} (purged){because}"
            return ProviderNotFound(message, status, code, detail, errors)
        summary = "; ".join(f"{e.field}: {e.message}" if e.field else e.message for e in errors[:5])
        message = f"The signing service refused the request: {summary or detail or status}"
        if status == 409:
            return ProviderConflict(
                message, status, code, detail, errors, retry_after=_retry_after(response)
            )
        return ProviderRejected(message, status, code, detail, errors)

    def _problem(self, response: httpx.Response) -> tuple[str | None, str | None, list[FieldError]]:
        """(detail, code, field errors) from Certyneo's ``{error, code}`` or problem+json."""
        try:
            body = response.json() if "json" in response.headers.get("content-type", "") else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return None, None, []
        error = body.get("error")
        code = body.get("code")
        if isinstance(error, dict):  # {"error": {"message", "code"}} of some APIs
            code = code or error.get("code")
            error = error.get("message")
        detail = _text(body.get("detail")) or _text(error) or _text(body.get("message"))
        raw = body.get("errors")
        if raw is None and isinstance(body.get("detail"), list):  # FastAPI's own 422 shape
            raw = body["detail"]
        errors = [FieldError(e.field, self._scrub(e.message) or "") for e in _field_errors(raw)]
        code_text = _text(code, 64)
        return self._scrub(detail), code_text, errors

    def read(self, response: httpx.Response, model: type[M], what: str = "answer") -> M:
        try:
            return model.model_validate(response.json())
        except (ValueError, ValidationError):
            raise ProviderError(
                f"The signing service sent a {what} signbot could not read (HTTP "
                f"{response.status_code}); is it a Certyneo-compatible API?",
                response.status_code,
                "BAD_RESPONSE",
            ) from None
