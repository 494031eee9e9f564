"""An envelope's parts — documents, recipients, fields — checked against each other and
written. Shared by create and update; writes use plain rows (``bot.db.insert_rows``) since
``POST /envelopes`` is a hot path.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam
from sqlalchemy import delete as sql_delete
from sqlmodel import Session, col, select

from bot.accounts.context import AuthContext
from bot.accounts.models import Workspace
from bot.accounts.service import default_workspace
from bot.db import insert_rows, plain_row
from bot.documents.models import Document
from bot.envelopes import lifecycle
from bot.envelopes.models import Envelope, EnvelopeDocument, EnvelopeField, Recipient
from bot.envelopes.placement import Placement
from bot.envelopes.schemas import FieldIn, RecipientIn
from bot.errors import FieldError, ValidationFailed
from bot.ids import new_id
from bot.signing import tokens
from bot.timeutil import to_utc

# Prebuilt statements for the create path (compiled once; POST /envelopes is hot).
_TENANT_DOCUMENTS = select(Document.id, Document.page_count).where(
    col(Document.id).in_(bindparam("ids", expanding=True)),
    Document.account_id == bindparam("account_id"),
    Document.environment == bindparam("environment"),
)
_DEFAULT_WORKSPACE = select(Workspace.id).where(
    Workspace.account_id == bindparam("account_id"), col(Workspace.is_default)
)


def future(name: str, value: datetime | None, now: datetime) -> datetime | None:
    if value is None:
        return None
    value = to_utc(value)
    if value <= now:
        raise ValidationFailed.field(name, "must be in the future")
    return value


def tenant_documents(session: Session, ctx: AuthContext, ids: list[str]) -> list[Row[Any]]:
    """The tenant's documents by id, in the given order (id and page count are all we need)."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    params = {"ids": ids, "account_id": ctx.account_id, "environment": ctx.environment}
    found = {d.id: d for d in session.execute(_TENANT_DOCUMENTS, params)}
    for i, doc_id in enumerate(ids):
        if doc_id in seen:
            errors.append(FieldError(f"documentIds.{i}", f"{doc_id} is listed twice"))
        elif doc_id not in found:
            errors.append(FieldError(f"documentIds.{i}", f"no document {doc_id[:60]}"))
        seen.add(doc_id)
    if errors:
        raise ValidationFailed("; ".join(f"{e.field}: {e.message}" for e in errors), errors)
    return [found[i] for i in ids]


def check_recipients(recipients: list[RecipientIn], field: str = "recipients") -> None:
    """At least one recipient, each address once."""
    if not recipients:
        raise ValidationFailed.field(field, "at least one recipient is required")
    seen: set[str] = set()
    for i, r in enumerate(recipients):
        if r.email.lower() in seen:
            raise ValidationFailed.field(f"{field}.{i}.email", f"{r.email} is listed twice")
        seen.add(r.email.lower())


def check_fields(
    fields: list[FieldIn], recipients: list[RecipientIn], documents: list[Row[Any]]
) -> None:
    emails = {r.email.lower() for r in recipients}
    for i, f in enumerate(fields):
        if f.recipient_email.lower() not in emails:
            raise ValidationFailed.field(
                f"fields.{i}.recipientEmail",
                f"{f.recipient_email} does not match any recipient",
            )
        if documents and f.document_index >= len(documents):
            raise ValidationFailed.field(
                f"fields.{i}.documentIndex",
                f"the envelope has {len(documents)} document(s); indexes count from 0",
            )
        if documents and f.page_number > documents[f.document_index].page_count:
            raise ValidationFailed.field(
                f"fields.{i}.pageNumber",
                f"document {f.document_index} has {documents[f.document_index].page_count} page(s)",
            )


def workspace_id(session: Session, ctx: AuthContext, workspace_id: str | None) -> str:
    if not workspace_id:
        found = session.execute(_DEFAULT_WORKSPACE, {"account_id": ctx.account_id}).scalar()
        return found or default_workspace(session, ctx.account_id).id
    workspace = session.get(Workspace, workspace_id)
    if workspace is None or workspace.account_id != ctx.account_id:
        raise ValidationFailed.field("workspaceId", f"no workspace {workspace_id[:60]}")
    return workspace.id


def write_recipients(
    session: Session,
    envelope: Envelope,
    recipients: list[RecipientIn],
    requested_order: lifecycle.SigningOrder | None,
    secret: bytes,
    *,
    replace: bool = True,
) -> list[Recipient]:
    if replace:
        session.exec(sql_delete(Recipient).where(col(Recipient.envelope_id) == envelope.id))  # type: ignore[call-overload]
    given = [r.order for r in recipients]
    order = lifecycle.resolve_signing_order(requested_order, given)
    routing = lifecycle.routing_orders(order, given)
    envelope.signing_order = order.value
    rows = []
    for i, (r, route) in enumerate(zip(recipients, routing, strict=True)):
        rid = new_id("recipient")
        row = plain_row(
            Recipient,
            id=rid,
            envelope_id=envelope.id,
            position=i,
            email=r.email,
            name=r.name or r.email.split("@")[0],
            role=r.role.value,
            order=r.order,
            routing_order=route,
            phone=r.phone,
            authentication=r.authentication if r.authentication != "NONE" else None,
            locale=r.locale,
            token_hash=tokens.lookup_hash(tokens.derive(secret, rid, 1)),
        )
        rows.append(row)
    return rows  # written by the caller once the envelope row exists


def write_documents(
    session: Session, envelope: Envelope, documents: list[Row[Any]], *, replace: bool = True
) -> None:
    if replace:
        session.exec(  # type: ignore[call-overload]
            sql_delete(EnvelopeDocument).where(col(EnvelopeDocument.envelope_id) == envelope.id)
        )
    insert_rows(
        session,
        EnvelopeDocument,
        [
            plain_row(EnvelopeDocument, envelope_id=envelope.id, position=i, document_id=doc.id)
            for i, doc in enumerate(documents)
        ],
    )


def _placed(placements: Sequence[Placement | None] | None, i: int) -> dict[str, Any]:
    placed = placements[i] if placements is not None and i < len(placements) else None
    return placed.columns() if placed is not None else {}


def write_fields(
    session: Session,
    envelope: Envelope,
    fields: list[FieldIn],
    recipients: list[Recipient],
    *,
    replace: bool = True,
    placements: Sequence[Placement | None] | None = None,
) -> list[EnvelopeField]:
    """Write the fields; with ``placements`` (in the same order) their resolved boxes too."""
    if replace:
        session.exec(sql_delete(EnvelopeField).where(col(EnvelopeField.envelope_id) == envelope.id))  # type: ignore[call-overload]
    by_email = {r.email.lower(): r.id for r in recipients}
    rows = []
    for i, f in enumerate(fields):
        rows.append(
            plain_row(
                EnvelopeField,
                id=new_id("field"),
                envelope_id=envelope.id,
                recipient_id=by_email[f.recipient_email.lower()],
                position=i,
                document_index=f.document_index,
                page_number=f.page_number,
                field_type=f.field_type.value,
                x=f.x,
                y=f.y,
                width=f.width,
                height=f.height,
                anchor_text=f.anchor_text or None,
                anchor_placement=f.anchor_placement,
                anchor_index=f.anchor_index,
                required=f.required,
                label=f.label,
                options=list(f.options),
                **_placed(placements, i),
            )
        )
    insert_rows(session, EnvelopeField, rows)
    return rows
