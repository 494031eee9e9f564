"""Reading and writing the bot's own tables (requests, seen deliveries, settings).

Functions take a session and never commit: the caller's ``Database.run`` is the transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.db import Database, shared_value
from bot.ids import new_id
from bot.slack.models import BotSetting, SeenDelivery, SignRequest
from bot.timeutil import utcnow

Claim = Literal["new", "done", "busy"]


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


#: How long a replica holds a delivery it is handling without renewing its claim; a replica
#: killed meanwhile lets the provider's next retry handle the event.
DELIVERY_CLAIM = timedelta(seconds=60)


def claim_delivery(session: Session, event_id: str, token: str) -> Claim:
    """Take a webhook delivery for handling under the claim ``token``.

    ``"new"``: ours to handle. ``"done"``: handled already (a redelivery: acknowledge).
    ``"busy"``: another attempt is handling it right now (ask the provider to retry later, so
    that the event is not lost if that attempt dies). A claim that ran out (its replica died)
    is taken over. The insert is the claim: of two concurrent attempts, the primary key lets
    one through (the loser's commit raises IntegrityError: see :func:`claim`)."""
    now = utcnow()
    row = session.get(SeenDelivery, event_id)
    if row is None:
        session.add(
            SeenDelivery(event_id=event_id, claim=token, claimed_until=now + DELIVERY_CLAIM)
        )
        session.flush()
        return "new"
    if row.done:
        return "done"
    result = session.exec(  # type: ignore[call-overload]
        update(SeenDelivery)
        .where(
            col(SeenDelivery.event_id) == event_id,
            col(SeenDelivery.done).is_(False),
            or_(
                col(SeenDelivery.claimed_until).is_(None),
                col(SeenDelivery.claimed_until) < now,
            ),
        )
        .values(claim=token, claimed_until=now + DELIVERY_CLAIM)
        .execution_options(synchronize_session=False)
    )
    return "new" if result.rowcount == 1 else "busy"


async def claim(db: Database, event_id: str, token: str) -> Claim:
    try:
        return await db.run(lambda s: claim_delivery(s, event_id, token))
    except IntegrityError:
        return "busy"


def _held(event_id: str, token: str) -> Any:
    return (col(SeenDelivery.event_id) == event_id) & (col(SeenDelivery.claim) == token)


def renew_delivery(session: Session, event_id: str, token: str) -> bool:
    """Extend the claim while the handling goes on (a slow provider); False when it was
    lost."""
    result = session.exec(  # type: ignore[call-overload]
        update(SeenDelivery)
        .where(_held(event_id, token), col(SeenDelivery.done).is_(False))
        .values(claimed_until=utcnow() + DELIVERY_CLAIM)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)


def finish_delivery(session: Session, event_id: str, token: str) -> None:
    """The event was absorbed and its posts queued: redeliveries are acknowledged from now
    on (in the caller's transaction, with the queueing)."""
    session.exec(  # type: ignore[call-overload]
        update(SeenDelivery)
        .where(_held(event_id, token))
        .values(done=True, claim=None, claimed_until=None)
        .execution_options(synchronize_session=False)
    )


def release_delivery(session: Session, event_id: str, token: str) -> None:
    """Give a delivery back after its handling failed, so the provider's retry is handled;
    only while this attempt still holds it (a successor's claim is never cleared)."""
    session.exec(  # type: ignore[call-overload]
        update(SeenDelivery)
        .where(_held(event_id, token), col(SeenDelivery.done).is_(False))
        .values(claim=None, claimed_until=None)
        .execution_options(synchronize_session=False)
    )


#: How long a handled delivery is remembered. Providers retry a delivery for at most a few
#: days (Certyneo's schedule ends within a day), so a redelivery older than this cannot come;
#: forgetting keeps the table bounded instead of growing with every event ever received.
SEEN_RETENTION = timedelta(days=30)


def forget_old_deliveries(session: Session, now: datetime | None = None) -> int:
    """Delete deliveries first seen before the retention window, unless one is being handled
    right now (its claim still runs); how many went."""
    now = now or utcnow()
    result = session.exec(  # type: ignore[call-overload]
        delete(SeenDelivery)
        .where(
            col(SeenDelivery.seen_at) < now - SEEN_RETENTION,
            or_(col(SeenDelivery.claimed_until).is_(None), col(SeenDelivery.claimed_until) < now),
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


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


# ------------------------------------------------------------------ a lock between replicas


async def try_lock(db: Database, name: str, token: str, ttl: timedelta) -> bool:
    """Take the lock ``name`` for ``ttl`` as ``token`` (a row of the settings table holding
    ``expiry|token``; a replica that dies holding it loses it when it runs out). False when
    another replica holds it."""
    key = f"lock:{name}"
    now = utcnow()
    value = f"{(now + ttl).isoformat()}|{token}"

    def take(session: Session) -> bool:
        row = session.get(BotSetting, key)
        if row is None:
            session.add(BotSetting(key=key, value=value))
            session.flush()
            return True
        expiry = datetime.fromisoformat(row.value.partition("|")[0])
        if expiry >= now:
            return False
        result = session.exec(  # type: ignore[call-overload]
            update(BotSetting)
            .where(col(BotSetting.key) == key, col(BotSetting.value) == row.value)
            .values(value=value)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)

    try:
        return await db.run(take)
    except IntegrityError:
        return False


def unlock(session: Session, name: str, token: str) -> None:
    """Release the lock if ``token`` still holds it (not a successor's, after it ran out)."""
    row = session.get(BotSetting, f"lock:{name}")
    if row is not None and row.value.partition("|")[2] == token:
        session.delete(row)
