"""Text members shared by every request schema: what a string may contain, what an email is.

One place, so a name, a subject, a tag or a webhook description all refuse the same things.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _no_control(value: str) -> str:
    """One-line members (names, subjects, ids) refuse control characters: NUL breaks
    PostgreSQL text, CR/LF would inject headers into the emails these values reach."""
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _no_control_in_text(value: str) -> str:
    """Multi-line text keeps tabs and line breaks, and refuses every other control character."""
    if _CONTROL_IN_TEXT.search(value):
        raise ValueError("must not contain control characters")
    return value


Line = Annotated[str, AfterValidator(_no_control)]
Text = Annotated[str, AfterValidator(_no_control_in_text)]


@lru_cache(maxsize=4096)
def check_email(value: str) -> str:
    """The normalized address, or a ValueError saying why it is not one. Cached: the same
    recipients come back again and again, and the validator costs ~0.1 ms a call."""
    if len(value) > 320:
        raise ValueError("is too long")
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"is not a valid email address ({exc})") from None
