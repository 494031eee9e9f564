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
    """Fan out up to ``limit`` pending events; returns how many this worker took.

    The batch is taken by one conditional write (``dispatched_at`` still empty, RETURNING
    what it set) before it is fanned out, so two workers never both fan an event out — on
    PostgreSQL (rows locked, others skipped) and on SQLite (the write takes the database
    lock for the transaction). It runs on the worker's loop beside the API, so it must stay
    cheap: a handful of statements per batch, whatever its size.
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
    if not candidates:
        return 0
    taken = set(
        session.exec(  # type: ignore[call-overload]
            update(OutboxEvent)
            .where(
                col(OutboxEvent.id).in_([e.id for e in candidates]),
                col(OutboxEvent.dispatched_at).is_(None),
            )
            .values(dispatched_at=utcnow())
            .returning(col(OutboxEvent.id))
            .execution_options(synchronize_session=False)
        ).scalars()
    )
    fan_out(session, [e for e in candidates if e.id in taken])
    return len(taken)
