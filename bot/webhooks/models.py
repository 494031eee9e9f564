"""Tables of webhook endpoints, their deliveries and the attempts log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from bot.timeutil import utcnow


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_tenant", "account_id", "environment"),)

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(foreign_key="accounts.id", max_length=40)
    environment: str = Field(max_length=8)
    url: str = Field(max_length=2048)
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    description: str = Field(default="", max_length=500)
    secret_sealed: str = Field(max_length=200)
    """The signing secret, encrypted (bot.secretbox); shown in clear only once."""
    is_active: bool = True
    failing_since: datetime | None = None
    """Start of the current run of failed attempts; three days of it disable the endpoint."""
    disabled_reason: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class WebhookDelivery(SQLModel, table=True):
    """One event for one endpoint, retried until delivered or given up."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    endpoint_id: str = Field(foreign_key="webhook_endpoints.id", max_length=40, ondelete="CASCADE")
    event_id: str = Field(max_length=40, index=True)
    event: str = Field(max_length=48)
    status: str = Field(default="pending", max_length=12)
    """pending → delivering (claimed, with a lease) → delivered | failed."""
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default_factory=utcnow)
    locked_until: datetime | None = None
    claim: str | None = Field(default=None, max_length=32)
    last_status_code: int | None = None
    last_response: str | None = Field(default=None, max_length=1024)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
    last_attempt_at: datetime | None = None
    delivered_at: datetime | None = None


class WebhookAttempt(SQLModel, table=True):
    """The delivery log: one row per attempt (at most ~9 per delivery, purged after 30 days)."""

    __tablename__ = "webhook_attempts"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: str = Field(
        foreign_key="webhook_deliveries.id", index=True, max_length=40, ondelete="CASCADE"
    )
    attempt: int
    at: datetime = Field(default_factory=utcnow)
    status_code: int | None = None
    response: str | None = Field(default=None, max_length=1024)
    error: str | None = Field(default=None, max_length=500)
    duration_ms: int = 0
