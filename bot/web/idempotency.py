"""``Idempotency-Key`` on POST: the same key and body replay the first answer for 24 hours.

A record is claimed (inserted, unique per tenant and key) before the work runs, in its own
transaction, so two concurrent requests with one key cannot both run: the second is told the
first is still in progress. The answer is stored right after the work commits; a request that
failed (any error) releases its claim so a retry can run, and a claim left behind by a process
that died in between is taken as abandoned after ``ABANDONED`` and claimed afresh.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint, delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

from bot.db import Database
from bot.errors import Conflict, IdempotencyKeyReused, ValidationFailed
from bot.timeutil import utcnow

TTL = timedelta(hours=24)
ABANDONED = timedelta(minutes=2)
MAX_KEY_LENGTH = 255


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("account_id", "environment", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(max_length=40)
    environment: str = Field(max_length=8)
    key: str = Field(max_length=MAX_KEY_LENGTH)
    fingerprint: str = Field(max_length=64)
    """SHA-256 of method, path and body: another body under the same key is refused."""
    status_code: int | None = None
    body: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, index=True)


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: dict[str, Any]


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), b"\0", path.encode(), b"\0", body):
        digest.update(part)
    return digest.hexdigest()


def _check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed.field(
            "Idempotency-Key", f"must be 1 to {MAX_KEY_LENGTH} printable characters"
        )


async def claim(
    db: Database, account_id: str, environment: str, key: str, fp: str
) -> Replay | None:
    """Claim ``key`` for this request, or return the answer to replay."""
    _check_key(key)
    now = utcnow()

    def find(session: Session) -> IdempotencyRecord | None:
        return session.exec(
            select(IdempotencyRecord).where(
                IdempotencyRecord.account_id == account_id,
                IdempotencyRecord.environment == environment,
                IdempotencyRecord.key == key,
            )
        ).first()

    def try_claim(session: Session) -> None:
        old = find(session)
        if old is not None and (
            old.created_at < now - TTL
            or (old.status_code is None and old.created_at < now - ABANDONED)
        ):
            session.delete(old)
            session.flush()
        session.add(
            IdempotencyRecord(
                account_id=account_id, environment=environment, key=key, fingerprint=fp
            )
        )

    try:
        await db.run(try_claim)
        return None
    except IntegrityError:
        pass
    record = await db.run(find)
    if record is None:  # released between our attempts: one more try
        await db.run(try_claim)
        return None
    if record.fingerprint != fp:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request body"
        )
    if record.status_code is None:
        raise Conflict("A request with this Idempotency-Key is still in progress; retry shortly")
    return Replay(record.status_code, record.body or {})


def store_in(
    session: Session,
    account_id: str,
    environment: str,
    key: str,
    status: int,
    body: dict[str, Any],
) -> None:
    """Keep the answer for replays, in the caller's transaction (the one doing the work)."""
    record = session.exec(
        select(IdempotencyRecord).where(
            IdempotencyRecord.account_id == account_id,
            IdempotencyRecord.environment == environment,
            IdempotencyRecord.key == key,
        )
    ).first()
    if record is not None:
        record.status_code = status
        record.body = json.loads(json.dumps(body))
        session.add(record)


def purge_expired(session: Session) -> int:
    """Drop records older than the replay window (a periodic job calls it)."""
    result = session.exec(  # type: ignore[call-overload]
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < utcnow() - TTL)
    )
    return result.rowcount or 0


async def release(db: Database, account_id: str, environment: str, key: str) -> None:
    """Forget a claim whose request failed, so the client can retry with the same key."""

    def drop(session: Session) -> None:
        session.exec(  # type: ignore[call-overload]
            delete(IdempotencyRecord).where(
                IdempotencyRecord.account_id == account_id,
                IdempotencyRecord.environment == environment,
                IdempotencyRecord.key == key,
                IdempotencyRecord.status_code.is_(None),  # type: ignore[union-attr]
            )
        )

    await db.run(drop)
