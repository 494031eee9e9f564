"""The domain error tree, shared by every adapter (HTTP, CLI, Slack).

Services raise these; they carry a stable machine ``code`` (Certyneo's vocabulary) and a
human message, never an HTTP status. Each adapter maps the tree in one table
(``bot.web.problems`` for HTTP problem+json, the CLI prints the message and exits 1).

    SignbotError                      base; code INTERNAL
    ├── ValidationFailed              VALIDATION_ERROR       bad input; carries per-field errors
    ├── Unauthorized                  UNAUTHORIZED           no or unknown/revoked API key
    ├── Forbidden                     FORBIDDEN              key lacks a scope or environment
    ├── NotFound                      NOT_FOUND              absent, or not this tenant's
    ├── Conflict                      CONFLICT               the object's state forbids it
    │   ├── IllegalTransition         CONFLICT               lifecycle refused a transition
    │   └── IdempotencyKeyReused      IDEMPOTENCY_KEY_REUSED same key, another body
    ├── Gone                          GONE                   purged by retention
    ├── PayloadTooLarge               PAYLOAD_TOO_LARGE      over the upload limit
    ├── UnsupportedMediaType          UNSUPPORTED_MEDIA_TYPE neither PDF, PNG nor JPEG
    ├── RateLimited                   RATE_LIMITED           bucket empty; carries retry_after
    └── Unavailable                   UNAVAILABLE            a backing service is down
        └── StorageUnavailable        UNAVAILABLE            document storage failed

This module is pure: it imports nothing from the web framework or the database.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field."""

    field: str
    """Dotted path of the field in the request, e.g. ``recipients.0.email``."""
    message: str


class SignbotError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(SignbotError):
    code = "VALIDATION_ERROR"

    def __init__(self, message: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []

    @classmethod
    def field(cls, field: str, message: str) -> ValidationFailed:
        """One field is wrong: the message names it."""
        return cls(f"{field}: {message}", [FieldError(field, message)])


class Unauthorized(SignbotError):
    code = "UNAUTHORIZED"


class Forbidden(SignbotError):
    code = "FORBIDDEN"


class NotFound(SignbotError):
    code = "NOT_FOUND"


class Conflict(SignbotError):
    code = "CONFLICT"

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        """Set when the conflict resolves by itself (a seal in progress): seconds to wait."""


class IllegalTransition(Conflict):
    """The envelope lifecycle refused a transition; the message says why."""


class IdempotencyKeyReused(Conflict):
    code = "IDEMPOTENCY_KEY_REUSED"


class Gone(SignbotError):
    code = "GONE"


class PayloadTooLarge(SignbotError):
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(SignbotError):
    code = "UNSUPPORTED_MEDIA_TYPE"


class RateLimited(SignbotError):
    code = "RATE_LIMITED"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(SignbotError):
    code = "UNAVAILABLE"
