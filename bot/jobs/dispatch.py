"""Fan committed outbox events out to their side effects (webhook deliveries for now).

Each pass claims undispatched events in order, creates their delivery rows and marks them
dispatched — one transaction, so an event is fanned out exactly once even with several workers
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's single writer elsewhere).
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from bot.jobs.models import OutboxEvent
from bot.timeutil import utcnow
from bot.webhooks.service import fan_out

BATCH = 200


def dispatch(session: Session, limit: int = BATCH) -> int:
    """Fan out up to ``limit`` pending events; returns how many were dispatched."""
    events = list(
        session.exec(
            select(OutboxEvent)
            .where(col(OutboxEvent.dispatched_at).is_(None))
            .order_by(col(OutboxEvent.occurred_at), col(OutboxEvent.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    now = utcnow()
    for event in events:
        fan_out(session, event)
        event.dispatched_at = now
        session.add(event)
    return len(events)
