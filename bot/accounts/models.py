"""Tables of tenants and their API keys."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from bot.timeutil import utcnow


class Account(SQLModel, table=True):
    """A tenant: every object belongs to one account and one environment."""

    __tablename__ = "accounts"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200, unique=True)
    email: str | None = Field(default=None, max_length=320)
    plan: str = Field(default="self-hosted", max_length=40)
    is_default: bool = Field(default=False)
    reminder_interval_days: int = 3
    """Default reminder cadence of this account's envelopes (0: none)."""
    reminder_max_count: int = 3
    created_at: datetime = Field(default_factory=utcnow)


class Workspace(SQLModel, table=True):
    """A shared space inside an account; every account has a default one."""

    __tablename__ = "workspaces"

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(foreign_key="accounts.id", index=True, max_length=40)
    name: str = Field(max_length=200)
    slug: str = Field(max_length=200)
    is_default: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utcnow)


class ApiKey(SQLModel, table=True):
    """An API key. Only the SHA-256 of its secret is kept: the secret has 190 bits of entropy,
    so a fast hash is safe and lets one indexed lookup find the key."""

    __tablename__ = "api_keys"

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(foreign_key="accounts.id", index=True, max_length=40)
    environment: str = Field(max_length=8)
    name: str = Field(default="", max_length=200)
    scopes: str = Field(max_length=400)
    """Space-separated scopes."""
    secret_hash: str = Field(max_length=64, unique=True, index=True)
    prefix: str = Field(max_length=16)
    """``sk_test_ab`` — enough to recognise a key in a list, never enough to use it."""
    last4: str = Field(max_length=4)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
