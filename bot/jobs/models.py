"""The transactional outbox: domain events written in the same transaction as their cause."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from bot.timeutil import utcnow


class OutboxEvent(SQLModel, table=True):
    """One domain event (``envelope.sent``…). Delivery jobs fan it out after commit; a row that
    was never committed was never sent, and a committed one survives a crash."""

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_events_pending", "dispatched_at", "occurred_at"),)

    id: str = Field(primary_key=True, max_length=40)
    """``evt_…``: stable across retries, the ``id`` webhook consumers deduplicate on."""
    account_id: str = Field(max_length=40, index=True)
    environment: str = Field(max_length=8)
    event: str = Field(max_length=48)
    envelope_id: str | None = Field(default=None, max_length=40, index=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    occurred_at: datetime = Field(default_factory=utcnow)
    dispatched_at: datetime | None = None
