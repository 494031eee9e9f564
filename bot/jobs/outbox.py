"""Writing to the outbox (delivery arrives with the events issue)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlmodel import Session

from bot.db import insert_rows, plain_row
from bot.ids import new_id
from bot.jobs.models import OutboxEvent
from bot.timeutil import utcnow


def emit(
    session: Session,
    *,
    account_id: str,
    environment: str,
    event: str,
    envelope_id: str | None,
    data: dict[str, Any],
) -> SimpleNamespace:
    """Record ``event`` in the caller's transaction; it is delivered only if that commits."""
    row = plain_row(
        OutboxEvent,
        id=new_id("event"),
        account_id=account_id,
        environment=environment,
        event=event,
        envelope_id=envelope_id,
        data=data,
        occurred_at=utcnow(),
    )
    insert_rows(session, OutboxEvent, [row])
    return row
