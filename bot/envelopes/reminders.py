"""Reminders to whoever still has to act: on the envelope's cadence, and on demand.

The job reads only envelopes whose ``next_reminder_at`` has come, through its index: the
column is cleared when no reminder is left or the envelope finishes, so the scan's cost
follows the number of reminders due, not the size of the table.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from bot.accounts.context import AuthContext
from bot.envelopes import audit, notices
from bot.envelopes.models import Envelope, Recipient
from bot.envelopes.presenters import EnvelopeAggregate
from bot.envelopes.queries import load, load_many
from bot.errors import IllegalTransition
from bot.timeutil import utcnow

BATCH = 100
ACTIVE = ("SENT", "DELIVERED", "PARTIALLY_SIGNED")
_WAITING = ("SENT", "VIEWED")
"""Recipient statuses that still have to act (invited, not done)."""


def _waiting(agg: EnvelopeAggregate) -> list[Recipient]:
    return [r for r in agg.recipients if r.status in _WAITING and r.role in ("SIGNER", "APPROVER")]


def _remind(session: Session, agg: EnvelopeAggregate, now: datetime, actor: audit.Actor) -> int:
    """Queue a reminder to everyone waiting; returns how many."""
    waiting = _waiting(agg)
    number = agg.envelope.reminders_sent + 1
    for recipient in waiting:
        notices.mail(session, agg.envelope, recipient, "reminder", number=number)
        notices.sms(session, agg.envelope, recipient, "reminder")
    if waiting:
        audit.record(
            session,
            agg.envelope.id,
            "envelope.reminded",
            actor,
            {"recipients": [r.email for r in waiting], "number": number},
            at=now,
        )
    return len(waiting)


def due_query(now: datetime) -> Any:
    """The envelopes whose reminder is due, through the index on ``next_reminder_at`` (its
    cost follows the rows due, not the table: ``bench/scale.py`` EXPLAINs this very query)."""
    return (
        select(Envelope)
        .where(col(Envelope.next_reminder_at) <= now)
        .order_by(col(Envelope.next_reminder_at))
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    )


def remind_due(session: Session) -> int:
    """Send the reminders that are due; returns how many envelopes were handled."""
    now = utcnow()
    rows = list(session.exec(due_query(now)))
    for agg in load_many(session, rows):
        envelope = agg.envelope
        if envelope.status in ACTIVE:
            _remind(session, agg, now, audit.SYSTEM)
            envelope.reminders_sent += 1
        more = envelope.status in ACTIVE and envelope.reminders_sent < envelope.reminder_max_count
        envelope.next_reminder_at = (
            now + timedelta(days=envelope.reminder_interval_days) if more else None
        )
        session.add(envelope)
    return len(rows)


def remind_now(
    session: Session, ctx: AuthContext, envelope_id: str, actor: audit.Actor
) -> tuple[EnvelopeAggregate, list[Recipient]]:
    """``POST /envelopes/{id}/remind``: remind everyone waiting, now. It does not count
    against the cadence's ``maxCount`` (the sender asked for it)."""
    now = utcnow()
    agg = load(session, ctx, envelope_id, lock=True)
    if agg.envelope.status not in ACTIVE:
        raise IllegalTransition(
            f"Envelope is {agg.envelope.status}; only a sent envelope that is not finished "
            "can be reminded"
        )
    waiting = _waiting(agg)
    if not waiting:
        raise IllegalTransition("Nobody has to act on this envelope right now")
    _remind(session, agg, now, actor)
    return agg, waiting
