"""Deployment-wide values every replica must share (kept in the database, not on a disk)."""

from __future__ import annotations

import secrets

from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

from bot.db import Database


class DeploymentSetting(SQLModel, table=True):
    __tablename__ = "deployment_settings"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=4096)


def get_or_create(db: Database, key: str, make: callable) -> str:  # type: ignore[valid-type]
    """The value under ``key``, created once with ``make()``; safe when replicas race."""
    def read(session: Session) -> str | None:
        row = session.exec(select(DeploymentSetting).where(DeploymentSetting.key == key)).first()
        return row.value if row else None

    value = db.run_sync(read)
    if value is not None:
        return value
    try:
        db.run_sync(lambda s: s.add(DeploymentSetting(key=key, value=make())))
    except IntegrityError:
        pass  # another replica won the race; read its value
    value = db.run_sync(read)
    assert value is not None
    return value


def signing_secret(db: Database, configured: str | None) -> bytes:
    """The secret signing tokens are derived from: ``SIGNBOT_SECRET_KEY`` or a generated one."""
    if configured:
        return configured.encode()
    return get_or_create(db, "token_secret", lambda: secrets.token_urlsafe(48)).encode()
