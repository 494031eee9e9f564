"""Deployment-wide values every replica must share (kept in the database, not on a disk)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

from bot.db import Database


class DeploymentSetting(SQLModel, table=True):
    __tablename__ = "deployment_settings"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=4096)


def get_or_create(db: Database, key: str, make: Callable[[], str]) -> str:
    """The value under ``key``, created once with ``make()``; safe when replicas race."""

    def read(session: Session) -> str | None:
        row = session.exec(select(DeploymentSetting).where(DeploymentSetting.key == key)).first()
        return row.value if row else None

    value = db.run_sync(read)
    if value is not None:
        return value
    # Another replica may win the race: then we read its value.
    with contextlib.suppress(IntegrityError):
        db.run_sync(lambda s: s.add(DeploymentSetting(key=key, value=make())))
    value = db.run_sync(read)
    assert value is not None
    return value


def signing_secret(db: Database, configured: str | None) -> bytes:
    """The secret signing tokens are derived from: ``SIGNBOT_SECRET_KEY`` or a generated one."""
    if configured:
        return configured.encode()
    return get_or_create(db, "token_secret", lambda: secrets.token_urlsafe(48)).encode()


def box_key(db: Database) -> bytes:
    """The key webhook secrets are encrypted with at rest (bot.secretbox)."""
    return get_or_create(db, "secretbox_key", lambda: secrets.token_urlsafe(48)).encode()
