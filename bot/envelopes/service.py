"""Envelope use cases: create, read, list, update, delete, send, void.

Services never commit (the request boundary does, through ``Database.run``). Every state
change goes through the pure ``lifecycle`` module, and every event it yields is written to the
outbox in the same transaction.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam
from sqlalchemy import delete as sql_delete
from sqlmodel import Session, col, func, select

from bot.accounts.context import AuthContext, get_owned
from bot.accounts.models import Workspace
from bot.accounts.service import default_workspace
from bot.db import insert_rows, plain_row
from bot.documents.models import Document
from bot.envelopes import category as categories
from bot.envelopes import lifecycle
from bot.envelopes.events import envelope_data, recipient_data
from bot.envelopes.models import Envelope, EnvelopeDocument, EnvelopeField, Recipient
from bot.envelopes.presenters import EnvelopeAggregate
from bot.envelopes.schemas import CreateEnvelopeIn, FieldIn, RecipientIn, UpdateEnvelopeIn
from bot.errors import FieldError, NotFound, ValidationFailed
from bot.ids import looks_like, new_id
from bot.jobs.outbox import emit
from bot.signing import tokens
from bot.timeutil import to_utc, utcnow

# ---------------------------------------------------------------- loading


def _get_row(session: Session, ctx: AuthContext, envelope_id: str) -> Envelope:
    return get_owned(session, Envelope, "envelope", ctx, envelope_id)


def load_many(session: Session, envelopes: list[Envelope]) -> list[EnvelopeAggregate]:
    """Aggregates for many envelopes in three queries, whatever their number."""
    ids = [e.id for e in envelopes]
    if not ids:
        return []
    recipients: dict[str, list[Recipient]] = defaultdict(list)
    for r in session.exec(
        select(Recipient)
        .where(col(Recipient.envelope_id).in_(ids))
        .order_by(col(Recipient.position))
    ):
        recipients[r.envelope_id].append(r)
    documents: dict[str, list[str]] = defaultdict(list)
    for d in session.exec(
        select(EnvelopeDocument)
        .where(col(EnvelopeDocument.envelope_id).in_(ids))
        .order_by(col(EnvelopeDocument.position))
    ):
        documents[d.envelope_id].append(d.document_id)
    fields: dict[str, list[EnvelopeField]] = defaultdict(list)
    for f in session.exec(
        select(EnvelopeField)
        .where(col(EnvelopeField.envelope_id).in_(ids))
        .order_by(col(EnvelopeField.position))
    ):
        fields[f.envelope_id].append(f)
    return [
        EnvelopeAggregate(e, recipients[e.id], documents[e.id], fields[e.id]) for e in envelopes
    ]


def load(session: Session, ctx: AuthContext, envelope_id: str) -> EnvelopeAggregate:
    return load_many(session, [_get_row(session, ctx, envelope_id)])[0]


_ENVELOPES = Envelope.__table__  # type: ignore[attr-defined]
#: ``GET /envelopes/{id}`` is the hottest read: prebuilt Core statements on one connection,
#: rows handed to the presenter as they are (attribute access by column name), no ORM.
_READ_ENVELOPE = select(*_ENVELOPES.c, _ENVELOPES.c.metadata.label("metadata_")).where(
    _ENVELOPES.c.id == bindparam("id"),
    _ENVELOPES.c.account_id == bindparam("account_id"),
    _ENVELOPES.c.environment == bindparam("environment"),
)
_READ_RECIPIENTS = (
    select(Recipient.__table__)  # type: ignore[attr-defined]
    .where(col(Recipient.envelope_id) == bindparam("id"))
    .order_by(col(Recipient.position))
)
_READ_DOCUMENTS = (
    select(EnvelopeDocument.document_id)
    .where(col(EnvelopeDocument.envelope_id) == bindparam("id"))
    .order_by(col(EnvelopeDocument.position))
)
_READ_FIELDS = (
    select(EnvelopeField.__table__)  # type: ignore[attr-defined]
    .where(col(EnvelopeField.envelope_id) == bindparam("id"))
    .order_by(col(EnvelopeField.position))
)


def read(connection: Connection, ctx: AuthContext, envelope_id: str) -> EnvelopeAggregate:
    """A read-only aggregate for answers (not for changes: its members are rows)."""
    envelope = None
    if looks_like("envelope", envelope_id):
        envelope = connection.execute(
            _READ_ENVELOPE,
            {"id": envelope_id, "account_id": ctx.account_id, "environment": ctx.environment},
        ).first()
    if envelope is None:
        raise NotFound(f"Envelope {envelope_id[:60]} not found")
    params = {"id": envelope_id}
    return EnvelopeAggregate(
        envelope,  # type: ignore[arg-type]
        list(connection.execute(_READ_RECIPIENTS, params)),  # type: ignore[arg-type]
        list(connection.execute(_READ_DOCUMENTS, params).scalars()),
        list(connection.execute(_READ_FIELDS, params)),  # type: ignore[arg-type]
    )


def list_envelopes(
    session: Session, ctx: AuthContext, *, offset: int, limit: int, status: str | None
) -> tuple[list[EnvelopeAggregate], int]:
    where = [Envelope.account_id == ctx.account_id, Envelope.environment == ctx.environment]
    if status is not None:
        where.append(Envelope.status == status)
    rows = list(
        session.exec(
            select(Envelope)
            .where(*where)
            .order_by(col(Envelope.created_at).desc(), col(Envelope.id).desc())
            .offset(offset)
            .limit(limit)
        )
    )
    total = session.exec(select(func.count()).select_from(Envelope).where(*where)).one()
    return load_many(session, rows), total


def access_tokens(secret: bytes, agg: EnvelopeAggregate) -> dict[str, str]:
    """Every recipient's signing token, derived again (nothing secret is stored)."""
    return {r.id: tokens.derive(secret, r.id, r.token_version) for r in agg.recipients}


# ---------------------------------------------------------------- validation helpers

# Prebuilt statements for the create path (compiled once; POST /envelopes is hot).
_TENANT_DOCUMENTS = select(Document.id, Document.page_count).where(
    col(Document.id).in_(bindparam("ids", expanding=True)),
    Document.account_id == bindparam("account_id"),
    Document.environment == bindparam("environment"),
)
_DEFAULT_WORKSPACE = select(Workspace.id).where(
    Workspace.account_id == bindparam("account_id"), col(Workspace.is_default)
)


def _future(name: str, value: datetime | None, now: datetime) -> datetime | None:
    if value is None:
        return None
    value = to_utc(value)
    if value <= now:
        raise ValidationFailed.field(name, "must be in the future")
    return value


def _documents(session: Session, ctx: AuthContext, ids: list[str]) -> list[Row[Any]]:
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


def _check_fields(
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


def _workspace(session: Session, ctx: AuthContext, workspace_id: str | None) -> str:
    if not workspace_id:
        found = session.execute(_DEFAULT_WORKSPACE, {"account_id": ctx.account_id}).scalar()
        return found or default_workspace(session, ctx.account_id).id
    workspace = session.get(Workspace, workspace_id)
    if workspace is None or workspace.account_id != ctx.account_id:
        raise ValidationFailed.field("workspaceId", f"no workspace {workspace_id[:60]}")
    return workspace.id


# ---------------------------------------------------------------- writing children


def _write_recipients(
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
            token_hash=tokens.lookup_hash(tokens.derive(secret, rid, 1)),
        )
        rows.append(row)
    return rows  # written by the caller once the envelope row exists


def _write_documents(
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


def _write_fields(
    session: Session,
    envelope: Envelope,
    fields: list[FieldIn],
    recipients: list[Recipient],
    *,
    replace: bool = True,
) -> list[EnvelopeField]:
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
            )
        )
    insert_rows(session, EnvelopeField, rows)
    return rows


# ---------------------------------------------------------------- use cases


def create(
    session: Session, ctx: AuthContext, body: CreateEnvelopeIn, *, secret: bytes
) -> EnvelopeAggregate:
    """A DRAFT envelope; emits ``envelope.created``."""
    now = utcnow()
    if not body.subject:
        raise ValidationFailed.field("subject", "is required")
    if body.template_id and body.document_ids:
        raise ValidationFailed(
            "Use templateId or documentIds, not both",
            [FieldError("templateId", "cannot be combined with documentIds")],
        )
    if body.template_id:
        raise ValidationFailed.field(
            "templateId", f"no template {body.template_id[:60]} (templates are not available yet)"
        )
    if not body.document_ids:
        raise ValidationFailed.field("documentIds", "at least one document id is required")
    documents = _documents(session, ctx, body.document_ids)
    recipients_in = body.recipients or []
    check_recipients(recipients_in)
    fields_in = body.fields or []
    _check_fields(fields_in, recipients_in, documents)
    envelope = plain_row(
        Envelope,
        id=new_id("envelope"),
        account_id=ctx.account_id,
        environment=ctx.environment,
        workspace_id=_workspace(session, ctx, body.workspace_id),
        subject=body.subject,
        message=body.message or "",
        signature_level=body.signature_level or "SIMPLE",
        category=body.category.value if body.category else categories.infer(body.subject),
        tags=body.tags or [],
        locale=body.locale or "en",
        redirect_url=body.redirect_url,
        initials_on_every_page=bool(body.initials_on_every_page),
        metadata_=body.metadata or {},
        expires_at=_future("expiresAt", body.expires_at, now),
        send_at=_future("sendAt", body.send_at, now),
        created_at=now,
        updated_at=now,
    )
    recipients = _write_recipients(
        session, envelope, recipients_in, body.signing_order, secret, replace=False
    )
    insert_rows(session, Envelope, [envelope])
    _write_documents(session, envelope, documents, replace=False)
    insert_rows(session, Recipient, recipients)
    fields = _write_fields(session, envelope, fields_in, recipients, replace=False)
    emit(
        session,
        account_id=ctx.account_id,
        environment=ctx.environment,
        event="envelope.created",
        envelope_id=envelope.id,
        data=envelope_data(envelope, recipients),
    )
    return EnvelopeAggregate(envelope, recipients, [d.id for d in documents], fields)


def update(
    session: Session,
    ctx: AuthContext,
    envelope_id: str,
    body: UpdateEnvelopeIn,
    *,
    secret: bytes,
) -> EnvelopeAggregate:
    """Change a DRAFT (or an envelope returned to its sender) in place."""
    now = utcnow()
    agg = load(session, ctx, envelope_id)
    envelope = agg.envelope
    lifecycle.ensure_editable(state_of(agg))
    given = body.model_fields_set
    if "subject" in given and body.subject:
        envelope.subject = body.subject
    if "message" in given:
        envelope.message = body.message or ""
    if "signature_level" in given and body.signature_level:
        envelope.signature_level = body.signature_level
    if "category" in given:
        envelope.category = (
            body.category.value if body.category else categories.infer(envelope.subject)
        )
    if "tags" in given:
        envelope.tags = body.tags or []
    if "locale" in given:
        envelope.locale = body.locale or "en"
    if "redirect_url" in given:
        envelope.redirect_url = body.redirect_url
    if "initials_on_every_page" in given:
        envelope.initials_on_every_page = bool(body.initials_on_every_page)
    if "metadata" in given:
        envelope.metadata_ = body.metadata or {}
    if "expires_at" in given:
        envelope.expires_at = _future("expiresAt", body.expires_at, now)
    if "send_at" in given:
        envelope.send_at = _future("sendAt", body.send_at, now)
    if "workspace_id" in given:
        envelope.workspace_id = _workspace(session, ctx, body.workspace_id)

    documents = _documents(session, ctx, agg.document_ids)
    if "document_ids" in given:
        if not body.document_ids:
            raise ValidationFailed.field("documentIds", "at least one document id is required")
        documents = _documents(session, ctx, body.document_ids)
        _write_documents(session, envelope, documents)

    old_emails = {r.id: r.email for r in agg.recipients}
    if "recipients" in given:
        recipients_in = body.recipients or []
    else:
        recipients_in = [
            RecipientIn(
                email=r.email,
                name=r.name,
                role=r.role,
                order=r.order,
                phone=r.phone,
                authentication=r.authentication,
            )
            for r in agg.recipients
        ]
    check_recipients(recipients_in)
    if "fields" in given:
        fields_in = body.fields or []
    else:
        fields_in = [
            FieldIn(
                recipient_email=old_emails[f.recipient_id],
                document_index=f.document_index,
                page_number=f.page_number,
                field_type=f.field_type,
                anchor_text=f.anchor_text,
                anchor_placement=f.anchor_placement,
                anchor_index=f.anchor_index,
                x=f.x,
                y=f.y,
                width=f.width,
                height=f.height,
                required=f.required,
                label=f.label,
                options=f.options,
            )
            for f in agg.fields
        ]
    try:
        _check_fields(fields_in, recipients_in, documents)
    except ValidationFailed as exc:
        if "fields" not in given:
            raise ValidationFailed(
                "The envelope's fields no longer fit its recipients or documents; "
                f"send `fields` too ({exc.message})",
                exc.errors,
            ) from None
        raise
    if "recipients" in given or "signing_order" in given:
        requested = body.signing_order if "signing_order" in given else None
        recipients = _write_recipients(session, envelope, recipients_in, requested, secret)
        insert_rows(session, Recipient, recipients)
        _write_fields(session, envelope, fields_in, recipients)
    elif "fields" in given:
        _write_fields(session, envelope, fields_in, agg.recipients)
    envelope.updated_at = now
    session.add(envelope)
    session.flush()
    return load(session, ctx, envelope_id)


def delete(session: Session, ctx: AuthContext, envelope_id: str) -> None:
    agg = load(session, ctx, envelope_id)
    lifecycle.ensure_deletable(state_of(agg))
    for model in (EnvelopeField, Recipient, EnvelopeDocument):
        session.exec(sql_delete(model).where(col(model.envelope_id) == envelope_id))  # type: ignore[call-overload, attr-defined]
    session.delete(agg.envelope)


def state_of(agg: EnvelopeAggregate) -> lifecycle.EnvelopeState:
    return lifecycle.EnvelopeState(
        status=lifecycle.EnvelopeStatus(agg.envelope.status),
        signing_order=lifecycle.SigningOrder(agg.envelope.signing_order),
        recipients=tuple(
            lifecycle.RecipientState(
                id=r.id,
                role=lifecycle.Role(r.role),
                order=r.routing_order,
                status=lifecycle.RecipientStatus(r.status),
            )
            for r in agg.recipients
        ),
    )


def apply(
    session: Session,
    ctx: AuthContext,
    agg: EnvelopeAggregate,
    transition: lifecycle.Transition,
    *,
    now: datetime,
    subject_id: str | None = None,
    **extra: object,
) -> None:
    """Write a lifecycle transition: statuses, invitation times, and its events (outbox)."""
    envelope = agg.envelope
    envelope.status = transition.state.status.value
    envelope.updated_at = now
    by_id = {r.id: r for r in agg.recipients}
    for state in transition.state.recipients:
        row = by_id[state.id]
        if row.status != state.status.value:
            row.status = state.status.value
            if state.status == lifecycle.RecipientStatus.PENDING:
                row.sent_at = row.viewed_at = row.signed_at = row.declined_at = None
            session.add(row)
    for rid in transition.invited:
        by_id[rid].sent_at = now
    session.add(envelope)
    for event in transition.events:
        if event.startswith("recipient.") and subject_id is not None:
            data = recipient_data(envelope, by_id[subject_id])
        else:
            data = envelope_data(envelope, agg.recipients, **extra)
        emit(
            session,
            account_id=ctx.account_id,
            environment=ctx.environment,
            event=event,
            envelope_id=envelope.id,
            data=data,
        )


def send(session: Session, ctx: AuthContext, envelope_id: str) -> EnvelopeAggregate:
    """DRAFT → SENT (or SCHEDULED when ``sendAt`` is ahead): the first group is invited."""
    now = utcnow()
    agg = load(session, ctx, envelope_id)
    envelope = agg.envelope
    if not agg.document_ids:
        raise ValidationFailed.field("documentIds", "the envelope has no document to sign")
    if envelope.expires_at is not None and envelope.expires_at <= now:
        raise ValidationFailed.field(
            "expiresAt", "has passed; PATCH a later expiresAt before sending"
        )
    state = state_of(agg)
    scheduled = (
        envelope.send_at is not None
        and envelope.send_at > now
        and state.status == lifecycle.EnvelopeStatus.DRAFT
    )
    transition = lifecycle.schedule(state) if scheduled else lifecycle.send(state)
    if not scheduled:
        envelope.sent_at = now
    apply(session, ctx, agg, transition, now=now)
    session.flush()
    return agg


def void(
    session: Session, ctx: AuthContext, envelope_id: str, reason: str | None
) -> EnvelopeAggregate:
    now = utcnow()
    agg = load(session, ctx, envelope_id)
    transition = lifecycle.void(state_of(agg))
    agg.envelope.voided_at = now
    agg.envelope.void_reason = reason or None
    apply(session, ctx, agg, transition, now=now, voidReason=reason or None)
    session.flush()
    return agg
