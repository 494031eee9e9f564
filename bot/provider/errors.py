"""What can go wrong talking to a signing service, as one tree.

Every message is a sentence a Slack user can read as is ("The signing service refused the
request: recipients.0.email: not a valid email"); ``code`` is the provider's stable code when
it sent one (Certyneo's ``{"error", "code"}``), ``status`` the HTTP status when there was an
answer. No message or repr ever contains the API key.

    ProviderError                 base: message, status, code; also an unreadable answer
    ├── ProviderUnavailable       could not connect, timed out, or 502/503/504 after retries
    │   └── RateLimited           429 after retries; retry_after (seconds) when known
    ├── ProviderRejected          any other 4xx: detail, and per-field errors as a list
    │   ├── ProviderAuthError     401 (key unknown or revoked) and 403 (missing scope)
    │   ├── ProviderNotFound      404, and 410 (purged by retention)
    │   └── ProviderConflict      409: the object's state forbids it; retry_after when the
    │                             provider says it resolves by itself (a seal in progress)
    └── NotSupported              the provider lacks one of signbot's extensions (feature)

A 500 is a ``ProviderError`` (the provider's bug, not retried). ``ProviderRejected.errors``
holds :class:`bot.errors.FieldError` items (``field`` as a dotted path, ``message``).
"""

from __future__ import annotations

from bot.errors import FieldError

__all__ = [
    "FieldError",
    "NotSupported",
    "ProviderAuthError",
    "ProviderConflict",
    "ProviderError",
    "ProviderNotFound",
    "ProviderRejected",
    "ProviderUnavailable",
    "RateLimited",
]


class ProviderError(Exception):
    """Base of every error of the provider client."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        """HTTP status of the provider's answer; ``None`` when there was none."""
        self.code = code
        """The provider's stable code (``VALIDATION_ERROR``, ``NOT_FOUND``…), when given."""

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status}, code={self.code!r})"


class ProviderUnavailable(ProviderError):
    """The service could not be reached or kept failing (5xx, timeouts); try again later."""


class RateLimited(ProviderUnavailable):
    def __init__(
        self,
        message: str,
        status: int | None = 429,
        code: str | None = "RATE_LIMITED",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status, code)
        self.retry_after = retry_after
        """Seconds the provider asked to wait (``Retry-After``), when it said."""


class ProviderRejected(ProviderError):
    """The service refused the request (4xx). The message says why."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        super().__init__(message, status, code)
        self.detail = detail
        """The provider's own explanation (``detail`` or ``error``), unprefixed."""
        self.errors = list(errors or [])
        """Per-field problems, e.g. ``FieldError("recipients.0.email", "not a valid email")``."""


class ProviderAuthError(ProviderRejected):
    """401: the API key is unknown or revoked; 403: it lacks a scope."""


class ProviderNotFound(ProviderRejected):
    """404 (no such object for this key) or 410 (purged by retention)."""


class ProviderConflict(ProviderRejected):
    def __init__(
        self,
        message: str,
        status: int | None = 409,
        code: str | None = None,
        detail: str | None = None,
        errors: list[FieldError] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status, code, detail, errors)
        self.retry_after = retry_after
        """Set when the provider says the conflict resolves by itself: seconds to wait."""


class NotSupported(ProviderError):
    """The provider lacks a signbot extension; the message says so plainly."""

    MESSAGES = {
        "void": "This signing service does not support cancelling a request",
        "remind": "This signing service does not support sending reminders on demand",
        "template_detail": "This signing service does not show a template's roles and fields",
        "rotate_secret": "This signing service does not support rotating a webhook's secret",
    }

    def __init__(self, feature: str, message: str | None = None) -> None:
        text = message or self.MESSAGES.get(feature, f"This signing service lacks {feature}")
        super().__init__(text, None, "NOT_SUPPORTED")
        self.feature = feature
        """Which capability is missing: a field name of ``Capabilities``."""
