"""The transactional outbox: domain events written in the same transaction as their cause."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
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


class Task(SQLModel, table=True):
    """A durable background job (seal an envelope, send one email or SMS), written in the
    transaction that caused it and run after commit by whichever worker claims it first.

    ``status``: ``pending`` (waiting for ``due_at``), ``running`` (leased until
    ``leased_until``; a worker that died leaves the lease to expire and another takes it),
    ``done`` or ``failed`` (gave up after its kind's attempts; the error is kept)."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_due", "status", "due_at"),
        UniqueConstraint("kind", "key", name="uq_tasks_kind_key"),
    )

    id: str = Field(primary_key=True, max_length=40)
    kind: str = Field(max_length=16)
    key: str = Field(max_length=120)
    """Deduplication: one ``finalize`` per envelope; other kinds use their own id."""
    envelope_id: str | None = Field(default=None, max_length=40, index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=8)
    attempts: int = 0
    due_at: datetime = Field(default_factory=utcnow)
    leased_until: datetime | None = None
    claim: str | None = Field(default=None, max_length=40)
    """The claimer holding the lease; a result is written only under the same claim."""
    last_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
