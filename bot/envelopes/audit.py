"""Appending to an envelope's hash-chained audit log, and reading it back.

Every change that matters as evidence (created, sent, invitation emailed, viewed, code sent
and checked, signed, approved, declined, returned, voided, expired, sealed) appends one entry
in the transaction of the change itself. Callers hold the envelope row locked
(``queries.load(..., lock=True)``), so two signers finishing at once append one after the
other and the chain never forks; the primary key (envelope, seq) would refuse a fork anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from bot.envelopes.models import AuditEvent, Recipient
from bot.signing import chain
from bot.timeutil import iso, utcnow


@dataclass(frozen=True)
class Actor:
    """Who caused an entry, and from where."""

    label: str
    """Human-readable and stable: ``api key key_…``, ``recipient rcp_… (Name <email>)``,
    ``system``."""
    ip: str | None = None
    user_agent: str | None = None


SYSTEM = Actor("system")


def api_actor(key_id: str, ip: str | None = None, user_agent: str | None = None) -> Actor:
    return Actor(f"api key {key_id}", ip, user_agent)


def recipient_actor(
    recipient: Recipient, ip: str | None = None, user_agent: str | None = None
) -> Actor:
    return Actor(f"recipient {recipient.id} ({recipient.name} <{recipient.email}>)", ip, user_agent)


def record(
    session: Session,
    envelope_id: str,
    event: str,
    actor: Actor,
    details: dict[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Append one entry after the envelope's last; returns it in the chain's format."""
    last = session.exec(
        select(AuditEvent.seq, AuditEvent.hash)
        .where(AuditEvent.envelope_id == envelope_id)
        .order_by(col(AuditEvent.seq).desc())
        .limit(1)
    ).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, chain.GENESIS)
    when = at or utcnow()
    entry = chain.link(
        {
            "seq": seq,
            "at": iso(when),
            "event": event,
            "actor": actor.label[:400],
            "ip": actor.ip,
            "userAgent": (actor.user_agent or None) and actor.user_agent[:512],
            "details": {k: v for k, v in (details or {}).items() if v is not None},
        },
        prev,
    )
    session.add(
        AuditEvent(
            envelope_id=envelope_id,
            seq=seq,
            at=when,
            event=event,
            actor=entry["actor"],
            ip=entry["ip"],
            user_agent=entry["userAgent"],
            details=entry["details"],
            prev_hash=prev,
            hash=entry["hash"],
        )
    )
    session.flush()
    return entry


def entries(session: Session, envelope_id: str) -> list[dict[str, Any]]:
    """The whole log in order, in the chain's format (what the audit-trail PDF embeds)."""
    rows = session.exec(
        select(AuditEvent)
        .where(AuditEvent.envelope_id == envelope_id)
        .order_by(col(AuditEvent.seq))
    )
    return [
        {
            "seq": row.seq,
            "at": iso(row.at),
            "event": row.event,
            "actor": row.actor,
            "ip": row.ip,
            "userAgent": row.user_agent,
            "details": row.details,
            "prevHash": row.prev_hash,
            "hash": row.hash,
        }
        for row in rows
    ]
