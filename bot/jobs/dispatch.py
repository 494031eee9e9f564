"""Fan committed outbox events out to their side effects (webhook deliveries for now).

Each pass claims undispatched events in order, creates their delivery rows and marks them
dispatched — one transaction, so an event is fanned out exactly once even with several workers
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's single writer elsewhere).
"""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import Session, col, select

from bot.jobs.models import OutboxEvent
from bot.timeutil import utcnow
from bot.webhooks.service import fan_out

BATCH = 200


def dispatch(session: Session, limit: int = BATCH) -> int:
    """Fan out up to ``limit`` pending events; returns how many this worker dispatched.

    Each event is taken by a conditional write (``dispatched_at`` still empty) before it is
    fanned out, so two workers never both fan it out — on PostgreSQL (rows locked, others
    skipped) and on SQLite (the first write takes the database lock for the transaction).
    """
    candidates = list(
        session.exec(
            select(OutboxEvent)
            .where(col(OutboxEvent.dispatched_at).is_(None))
            .order_by(col(OutboxEvent.occurred_at), col(OutboxEvent.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    now = utcnow()
    taken = 0
    for event in candidates:
        result = session.exec(  # type: ignore[call-overload]
            update(OutboxEvent)
            .where(col(OutboxEvent.id) == event.id, col(OutboxEvent.dispatched_at).is_(None))
            .values(dispatched_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            fan_out(session, event)
            taken += 1
    return taken
