"""What a Certyneo-compatible API answers, as typed, tolerant models (pydantic v2).

Tolerant on purpose: unknown members are ignored, every member but ``id`` has a default
(Certyneo omits a plain string that is unset rather than sending ``null``), and members that
only signbot serves (our extensions: template roles and defaults, ``documentIds``,
``signingOrder``…) are simply absent — empty or ``None`` — when the provider is the hosted
Certyneo. Statuses stay plain strings so a status added by the provider never breaks a read.

:class:`CreateEnvelope` is the one outgoing model: the body of ``POST /envelopes``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

FINISHED_STATUSES = frozenset({"COMPLETED", "DECLINED", "VOIDED", "EXPIRED"})
"""Envelope statuses after which nothing more happens (the audit trail is available)."""


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class TemplateRole(_Model):
    """Extension: one role a recipient fills when an envelope is made from the template."""

    name: str = ""
    role: str = "SIGNER"
    """SIGNER, VIEWER, CARBON_COPY or APPROVER."""
    order: int | None = None
    """Routing order of the role (sequential templates); ``None`` when parallel."""


class Reminders(_Model):
    """Extension: reminder cadence (``interval_days: 0`` sends none)."""

    interval_days: int = 0
    max_count: int = 0
    sent: int | None = None
    """On an envelope: how many reminders went out already."""
    next_at: datetime | None = None


class Approval(_Model):
    """Extension: whether someone approves before the envelope goes out."""

    required: bool = False
    approver_role: str | None = None
    """Name of the template role that approves, when the approver is a recipient."""


class Template(_Model):
    """Certyneo's ``Template`` (id, name, description, counts) plus our extensions."""

    id: str
    name: str = ""
    description: str | None = None
    signer_count: int | None = None
    document_count: int | None = None
    # extensions (absent on the hosted Certyneo)
    roles: list[TemplateRole] = Field(default_factory=list)
    """Recipients given on create fill these roles, in this order."""
    signing_order: str | None = None
    default_subject: str | None = None
    default_message: str | None = None
    reminders: Reminders | None = None
    expires_in_days: int | None = None
    approval: Approval | None = None
    documents: list[dict[str, Any]] = Field(default_factory=list)
    """Only from the detail route: ``[{index, name}]``."""
    fields: list[dict[str, Any]] = Field(default_factory=list)
    """Only from the detail route: where each role fills what."""


class Document(_Model):
    id: str
    name: str = ""
    mime_type: str | None = None
    size: int | None = None
    status: str | None = None
    page_count: int | None = None
    sha256: str | None = None
    created_at: datetime | None = None


class Recipient(_Model):
    id: str | None = None
    email: str = ""
    name: str | None = None
    role: str = "SIGNER"
    status: str | None = None
    order: int | None = None
    phone: str | None = None
    signed_at: datetime | None = None
    viewed_at: datetime | None = None
    declined_at: datetime | None = None
    decline_reason: str | None = None
    access_token: str | None = None
    """Only in the answers of create and send. A credential: never log it."""
    sign_url: str | None = None
    """Only in the answers of create and send (signbot's; Certyneo gives ``accessToken``)."""
    email_status: str | None = None
    """Extension: whether the last invitation or reminder email left."""
    email_error: str | None = None


class Envelope(_Model):
    id: str
    subject: str = ""
    message: str | None = None
    status: str = ""
    signature_level: str | None = None
    recipients: list[Recipient] = Field(default_factory=list)
    created_at: datetime | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    # extensions
    template_id: str | None = None
    document_ids: list[str] = Field(default_factory=list)
    signing_order: str | None = None
    sent_at: datetime | None = None
    voided_at: datetime | None = None
    void_reason: str | None = None
    reminders: Reminders | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None
    warnings: list[str] = Field(default_factory=list)

    @property
    def is_finished(self) -> bool:
        """COMPLETED, DECLINED, VOIDED or EXPIRED: nothing more will happen."""
        return self.status in FINISHED_STATUSES


class Pagination(_Model):
    total: int = 0
    page: int = 1
    page_size: int = 0
    pages: int = 0


T = TypeVar("T")


class Page(_Model, Generic[T]):
    """One page of a list: ``{data, pagination}`` (``pagination`` absent on some lists)."""

    data: list[T] = Field(default_factory=list)
    pagination: Pagination | None = None

    @property
    def has_more(self) -> bool:
        """Whether a later page exists, as far as the pagination block tells."""
        p = self.pagination
        return p is not None and bool(self.data) and p.page < p.pages


class WebhookSubscription(_Model):
    id: str
    url: str = ""
    events: list[str] = Field(default_factory=list)
    is_active: bool = True
    secret: str | None = None
    """``whsec_…``: answered once, by creation (or rotation); ``None`` everywhere else."""
    description: str | None = None
    created_at: datetime | None = None


class Reminded(_Model):
    """Extension ``POST /envelopes/{id}/remind``: who was reminded."""

    success: bool = True
    reminded: list[Recipient] = Field(default_factory=list)


# --------------------------------------------------------------------------------------
# outgoing
# --------------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


RecipientRole = Literal["SIGNER", "VIEWER", "CARBON_COPY", "APPROVER"]


class NewRecipient(_Out):
    email: str
    name: str | None = None
    role: RecipientRole = "SIGNER"
    order: int | None = None
    phone: str | None = None
    locale: str | None = None


class NewField(_Out):
    """Certyneo's ``EnvelopeField``: an anchor text, or coordinates (points, y from the top)."""

    recipient_email: str
    field_type: str = "SIGNATURE"
    document_index: int | None = None
    page_number: int | None = None
    anchor_text: str | None = None
    anchor_placement: Literal["right", "below", "above", "left"] | None = None
    anchor_index: int | None = None
    x: float | None = None
    y: float | None = None
    width: float | None = None
    height: float | None = None
    required: bool | None = None
    label: str | None = None
    options: list[str] | None = None


class NewReminders(_Out):
    interval_days: int
    max_count: int | None = None


class CreateEnvelope(_Out):
    """Body of ``POST /envelopes``: ``template_id`` **or** ``document_ids``, not both.

    With a template, the recipients fill its roles in order. Members left ``None`` are not
    sent. ``signing_order`` and ``reminders`` are signbot extensions.
    """

    subject: str
    recipients: list[NewRecipient]
    message: str | None = None
    template_id: str | None = None
    document_ids: list[str] | None = None
    fields: list[NewField] | None = None
    signing_order: Literal["PARALLEL", "SEQUENTIAL"] | None = None
    signature_level: Literal["SIMPLE", "ADVANCED", "QUALIFIED"] | None = None
    expires_at: datetime | None = None
    reminders: NewReminders | None = None
    locale: str | None = None
    tags: list[str] | None = None
    redirect_url: str | None = None
    workspace_id: str | None = None
    metadata: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The request body: camelCase, unset members left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
