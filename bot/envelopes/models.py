"""Tables of envelopes, their documents, recipients and fields."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary
from sqlmodel import Field, SQLModel

from bot.timeutil import utcnow


class Envelope(SQLModel, table=True):
    __tablename__ = "envelopes"
    __table_args__ = (
        Index("ix_envelopes_tenant_created", "account_id", "environment", "created_at"),
        Index("ix_envelopes_tenant_status", "account_id", "environment", "status"),
        Index("ix_envelopes_status_send_at", "status", "send_at"),
        Index("ix_envelopes_status_expires_at", "status", "expires_at"),
        Index("ix_envelopes_next_reminder_at", "next_reminder_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(foreign_key="accounts.id", max_length=40)
    environment: str = Field(max_length=8)
    workspace_id: str = Field(foreign_key="workspaces.id", max_length=40)
    subject: str = Field(max_length=255)
    message: str = Field(default="", max_length=10000)
    status: str = Field(default="DRAFT", max_length=24)
    signing_order: str = Field(default="PARALLEL", max_length=12)
    signature_level: str = Field(default="SIMPLE", max_length=12)
    category: str = Field(default="OTHER", max_length=16)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    locale: str = Field(default="en", max_length=35)
    redirect_url: str | None = Field(default=None, max_length=2048)
    initials_on_every_page: bool = False
    metadata_: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSON, nullable=False)
    )
    template_id: str | None = Field(default=None, max_length=80)
    expires_at: datetime | None = None
    send_at: datetime | None = None
    sent_at: datetime | None = None
    completed_at: datetime | None = None
    voided_at: datetime | None = None
    void_reason: str | None = Field(default=None, max_length=1000)
    finished_at: datetime | None = None
    """When it became COMPLETED, DECLINED, VOIDED or EXPIRED."""
    reminder_interval_days: int = 0
    """Days between reminders to whoever still has to act; 0 sends none."""
    reminder_max_count: int = 0
    reminders_sent: int = 0
    next_reminder_at: datetime | None = None
    """Due time of the next reminder; cleared when none is left or the envelope finishes, so
    the reminder scan reads only an index range of due rows."""
    signed_document_key: str | None = Field(default=None, max_length=512)
    """Storage key of the sealed PDF; set (with ``sealed_at``) by the finalize job."""
    signed_sha256: str | None = Field(default=None, max_length=64)
    sealed_at: datetime | None = None
    audit_trail_key: str | None = Field(default=None, max_length=512)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class EnvelopeDocument(SQLModel, table=True):
    """Which documents an envelope carries, in order (``documentIndex`` counts from 0)."""

    __tablename__ = "envelope_documents"

    envelope_id: str = Field(
        foreign_key="envelopes.id", primary_key=True, max_length=40, ondelete="CASCADE"
    )
    position: int = Field(primary_key=True)
    document_id: str = Field(foreign_key="documents.id", index=True, max_length=40)


class Recipient(SQLModel, table=True):
    __tablename__ = "recipients"

    id: str = Field(primary_key=True, max_length=40)
    envelope_id: str = Field(
        foreign_key="envelopes.id", index=True, max_length=40, ondelete="CASCADE"
    )
    position: int
    email: str = Field(max_length=320)
    name: str = Field(max_length=255)
    role: str = Field(max_length=16)
    order: int | None = None
    """The ``order`` the sender gave, if any."""
    routing_order: int = 1
    """The effective routing group (lifecycle.routing_orders)."""
    status: str = Field(default="PENDING", max_length=12)
    phone: str | None = Field(default=None, max_length=32)
    authentication: str | None = Field(default=None, max_length=16)
    locale: str | None = Field(default=None, max_length=35)
    """Extension: this recipient's language, over the envelope's."""
    token_version: int = 1
    token_hash: str = Field(max_length=64, unique=True, index=True)
    """SHA-256 of the derived signing token; the token itself is never stored."""
    sent_at: datetime | None = None
    viewed_at: datetime | None = None
    signed_at: datetime | None = None
    declined_at: datetime | None = None
    decline_reason: str | None = Field(default=None, max_length=1000)
    email_status: str | None = Field(default=None, max_length=12)
    """Last email to this recipient: QUEUED, SENT, CAPTURED (written to the local mail folder:
    sandbox or no SMTP server) or FAILED; shown in the API so a failing server is visible."""
    email_error: str | None = Field(default=None, max_length=500)
    sms_status: str | None = Field(default=None, max_length=12)
    sms_error: str | None = Field(default=None, max_length=500)
    otp_hash: str | None = Field(default=None, max_length=64)
    """HMAC of the current one-time code (EMAIL_OTP); the code itself is never stored."""
    otp_expires_at: datetime | None = None
    otp_attempts: int = 0
    """Wrong codes entered against the current code; at the limit the code is burnt."""
    otp_sent_count: int = 0
    """Codes sent in the current window (``otp_window_start``), to bound mail bombing."""
    otp_window_start: datetime | None = None


class EnvelopeField(SQLModel, table=True):
    """A field placed for one recipient, by coordinates or next to an anchor text."""

    __tablename__ = "envelope_fields"

    id: str = Field(primary_key=True, max_length=40)
    envelope_id: str = Field(
        foreign_key="envelopes.id", index=True, max_length=40, ondelete="CASCADE"
    )
    recipient_id: str = Field(foreign_key="recipients.id", max_length=40, ondelete="CASCADE")
    position: int
    document_index: int = 0
    page_number: int = 1
    field_type: str = Field(max_length=16)
    x: float = 72
    y: float = 700
    width: float = 150
    height: float = 40
    anchor_text: str | None = Field(default=None, max_length=200)
    anchor_placement: str = Field(default="right", max_length=8)
    anchor_index: int = 0
    required: bool = True
    label: str | None = Field(default=None, max_length=200)
    options: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Where the field really goes, resolved from the anchor (or the coordinates) when the
    # envelope is created or changed: points, y from the top of the displayed page.
    placed_page: int | None = None
    placed_x: float | None = None
    placed_y: float | None = None
    placed_width: float | None = None
    placed_height: float | None = None
    page_width: float | None = None
    """Size of the displayed page the field is on, to overlay it on the page's image."""
    page_height: float | None = None
    anchor_found: bool | None = None
    """None: placed by coordinates; False: the anchor was not found, the coordinates were used."""


class FieldValue(SQLModel, table=True):
    """What a signer filled in a field (evidence, and what the seal job stamps)."""

    __tablename__ = "field_values"

    field_id: str = Field(
        foreign_key="envelope_fields.id", primary_key=True, max_length=40, ondelete="CASCADE"
    )
    envelope_id: str = Field(
        foreign_key="envelopes.id", index=True, max_length=40, ondelete="CASCADE"
    )
    recipient_id: str = Field(max_length=40)
    value: str = Field(default="", max_length=2000)
    """Text, the chosen option, ``true``/``false`` for a checkbox, the date for DATE_SIGNED;
    empty for signatures and initials (the signature row holds those)."""
    filled_at: datetime


class AuditEvent(SQLModel, table=True):
    """One entry of an envelope's hash-chained audit log (``bot.signing.chain``).

    Written in the transaction of what it records; ``seq`` is unique per envelope, and the
    envelope row is locked while appending, so concurrent signers cannot fork the chain."""

    __tablename__ = "audit_events"

    envelope_id: str = Field(
        foreign_key="envelopes.id", primary_key=True, max_length=40, ondelete="CASCADE"
    )
    seq: int = Field(primary_key=True)
    at: datetime
    event: str = Field(max_length=48)
    actor: str = Field(max_length=400)
    """Who did it: ``recipient rcp_… (Name <email>)``, ``api key key_…``, ``system``."""
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=512)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class Signature(SQLModel, table=True):
    """What a recipient gave when signing or approving: the evidence the seal job stamps."""

    __tablename__ = "signatures"

    recipient_id: str = Field(
        foreign_key="recipients.id", primary_key=True, max_length=40, ondelete="CASCADE"
    )
    envelope_id: str = Field(
        foreign_key="envelopes.id", index=True, max_length=40, ondelete="CASCADE"
    )
    kind: str = Field(max_length=12)
    """``drawn``, ``typed`` or ``approval``."""
    name: str = Field(max_length=255)
    """The name the signer confirmed on the page."""
    typed: str | None = Field(default=None, max_length=255)
    initials: str | None = Field(default=None, max_length=20)
    """Typed initials, for INITIALS fields and ``initialsOnEveryPage``."""
    image_png: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    """A drawn signature, re-encoded by us as a PNG (never the browser's bytes as they came)."""
    consent_version: str = Field(max_length=32)
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=512)
    signed_at: datetime
