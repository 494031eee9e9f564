"""Time-driven transitions: scheduled envelopes going out, envelopes expiring.

Both scan only rows whose due time has come, through indexes on (status, send_at) and
(status, expires_at), never the whole table.
"""

from __future__ import annotations

from sqlalchemy import or_
from sqlmodel import Session, col, select

from bot.accounts.context import AuthContext
from bot.envelopes import audit, lifecycle
from bot.envelopes.models import Envelope
from bot.envelopes.queries import load_many
from bot.envelopes.service import apply, state_of
from bot.timeutil import utcnow

IN_PROGRESS = ("SENT", "DELIVERED", "PARTIALLY_SIGNED", "RETURNED_TO_SENDER", "SCHEDULED")
BATCH = 100


def _context(envelope: Envelope) -> AuthContext:
    return AuthContext("system", envelope.account_id, envelope.environment, frozenset())


def release_scheduled(session: Session) -> int:
    """SCHEDULED envelopes whose ``sendAt`` has come are sent."""
    now = utcnow()
    rows = list(
        session.exec(
            select(Envelope)
            .where(
                Envelope.status == "SCHEDULED",
                col(Envelope.send_at) <= now,
                # one whose expiry came first is expired, never sent
                or_(col(Envelope.expires_at).is_(None), col(Envelope.expires_at) > now),
            )
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
    )
    for agg in load_many(session, rows):
        agg.envelope.sent_at = now
        apply(
            session,
            _context(agg.envelope),
            agg,
            lifecycle.release(state_of(agg)),
            now=now,
            actor=audit.SYSTEM,
        )
    return len(rows)


def expire_due(session: Session) -> int:
    """In-progress envelopes past ``expiresAt`` expire, naming who is missing."""
    now = utcnow()
    rows = list(
        session.exec(
            select(Envelope)
            .where(col(Envelope.status).in_(IN_PROGRESS), col(Envelope.expires_at) <= now)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
    )
    for agg in load_many(session, rows):
        state = state_of(agg)
        by_id = {r.id: r for r in agg.recipients}
        missing = [by_id[rid].email for rid in lifecycle.missing_signers(state)]
        apply(
            session,
            _context(agg.envelope),
            agg,
            lifecycle.expire(state),
            now=now,
            actor=audit.SYSTEM,
            details={"missingSigners": missing},
            missingSigners=missing,
        )
    return len(rows)
