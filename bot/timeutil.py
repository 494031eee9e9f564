"""UTC times: aware datetimes everywhere (SQLModel's column type insists), shown ISO 8601 with Z."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a ``Z`` and millisecond precision, as Certyneo writes times."""
    if value is None:
        return None
    return to_utc(value).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def to_utc(value: datetime) -> datetime:
    """An aware datetime in UTC; a naive one is taken as UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
