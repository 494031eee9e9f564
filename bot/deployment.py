"""Deployment-wide values every replica must share (kept in the database, not on a disk)."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from bot.db import Database, shared_value


class DeploymentSetting(SQLModel, table=True):
    __tablename__ = "deployment_settings"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(sa_column=Column(Text, nullable=False))
    """Text: the sealing identity (key sealed, certificates) is a few kilobytes."""


def get_or_create(db: Database, key: str, make: Callable[[], str]) -> str:
    """The value under ``key``, created once with ``make()``; safe when replicas race."""
    return shared_value(db, DeploymentSetting, key, make)


def signing_secret(db: Database, configured: str | None) -> bytes:
    """The secret signing tokens are derived from: ``SIGNBOT_SECRET_KEY`` or a generated one."""
    if configured:
        return configured.encode()
    return get_or_create(db, "token_secret", lambda: secrets.token_urlsafe(48)).encode()


def box_key(db: Database) -> bytes:
    """The key webhook secrets are encrypted with at rest (bot.secretbox)."""
    return get_or_create(db, "secretbox_key", lambda: secrets.token_urlsafe(48)).encode()
