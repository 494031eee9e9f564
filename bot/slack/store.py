"""Reading and writing the bot's own tables (requests, seen deliveries, settings).

Functions take a session and never commit: the caller's ``Database.run`` is the transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.db import Database, shared_value
from bot.ids import new_id
from bot.slack.models import BotSetting, SeenDelivery, SignRequest
from bot.timeutil import utcnow


def new_request(session: Session, **values: Any) -> SignRequest:
    """A request with the next short number of its workspace (``#12``). The unique
    (team, number) constraint makes two simultaneous requests fail loudly, not share a number;
    the caller's transaction holds the write lock on SQLite, and retries on PostgreSQL."""
    team_id = values["team_id"]
    last = session.exec(
        select(func.max(SignRequest.number)).where(SignRequest.team_id == team_id)
    ).one()
    request = SignRequest(id=new_id("request"), number=(last or 0) + 1, **values)
    session.add(request)
    session.flush()
    return request


def find(session: Session, team_id: str, ref: str) -> SignRequest | None:
    """By ``#12`` / ``12`` or by envelope id, within one workspace."""
    ref = ref.strip().lstrip("#")
    if ref.isdigit():
        query = select(SignRequest).where(
            SignRequest.team_id == team_id, SignRequest.number == int(ref)
        )
    else:
        query = select(SignRequest).where(
            SignRequest.team_id == team_id, SignRequest.envelope_id == ref
        )
    return session.exec(query).first()


def by_envelope(session: Session, envelope_id: str) -> SignRequest | None:
    return session.exec(
        select(SignRequest).where(SignRequest.envelope_id == envelope_id).with_for_update()
    ).first()


def mine(session: Session, team_id: str, user_id: str, limit: int = 20) -> list[SignRequest]:
    return list(
        session.exec(
            select(SignRequest)
            .where(SignRequest.team_id == team_id, SignRequest.requester_id == user_id)
            .order_by(col(SignRequest.created_at).desc())
            .limit(limit)
        )
    )


def touch(request: SignRequest, **values: Any) -> None:
    for name, value in values.items():
        setattr(request, name, value)
    request.updated_at = utcnow()


def first_time(session: Session, event_id: str) -> bool:
    """Record a webhook delivery; False when it was seen before (a redelivery)."""
    if session.get(SeenDelivery, event_id) is not None:
        return False
    session.add(SeenDelivery(event_id=event_id))
    session.flush()
    return True


def claim_delivery(session: Session, event_id: str) -> bool:
    """Take a webhook delivery for handling; False when another attempt has it (or had it).
    The insert is the claim: of two concurrent attempts, the primary key lets one through
    (the loser's commit raises IntegrityError: see :func:`claim`)."""
    if session.get(SeenDelivery, event_id) is not None:
        return False
    session.add(SeenDelivery(event_id=event_id))
    session.flush()
    return True


async def claim(db: Database, event_id: str) -> bool:
    try:
        return await db.run(lambda s: claim_delivery(s, event_id))
    except IntegrityError:
        return False


def release_delivery(session: Session, event_id: str) -> None:
    """Give a delivery back after its handling failed, so the provider's retry is handled."""
    row = session.get(SeenDelivery, event_id)
    if row is not None:
        session.delete(row)


def setting(db: Database, key: str, make: Callable[[], str]) -> str:
    """A value every replica of the bot shares, created once."""
    return shared_value(db, BotSetting, key, make)


def put_setting(session: Session, key: str, value: str) -> None:
    row = session.get(BotSetting, key)
    if row is None:
        session.add(BotSetting(key=key, value=value))
    else:
        row.value = value
        session.add(row)
