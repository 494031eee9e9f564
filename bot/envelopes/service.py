"""Envelope use cases that change things: create, update, delete, send, void.

Reading lives in ``bot.envelopes.queries``.

Services never commit (the request boundary does, through ``Database.run``). Every state
change goes through the pure ``lifecycle`` module, and every event it yields is written to the
outbox in the same transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlmodel import Session, col

from bot.accounts.context import AuthContext
from bot.accounts.models import Account
from bot.db import insert_rows, plain_row
from bot.envelopes import audit, lifecycle, notices, parts
from bot.envelopes import category as categories
from bot.envelopes.audit import Actor
from bot.envelopes.events import envelope_data, recipient_data
from bot.envelopes.models import (
    Envelope,
    EnvelopeDocument,
    EnvelopeField,
    FieldValue,
    Recipient,
    Signature,
)
from bot.envelopes.placement import Placement
from bot.envelopes.presenters import EnvelopeAggregate
from bot.envelopes.queries import load
from bot.envelopes.schemas import (
    CreateEnvelopeIn,
    FieldIn,
    RecipientIn,
    RemindersIn,
    UpdateEnvelopeIn,
)
from bot.errors import FieldError, ValidationFailed
from bot.ids import new_id
from bot.jobs.outbox import emit
from bot.jobs.tasks import enqueue
from bot.timeutil import iso, utcnow

# ---------------------------------------------------------------- use cases


def create(
    session: Session,
    ctx: AuthContext,
    body: CreateEnvelopeIn,
    *,
    secret: bytes,
    actor: Actor | None = None,
    placements: list[Placement | None] | None = None,
    template_id: str | None = None,
) -> EnvelopeAggregate:
    """A DRAFT envelope; emits ``envelope.created``. ``placements``: where each field goes,
    resolved by the caller from the documents (``bot.envelopes.placement``)."""
    now = utcnow()
    if not body.subject:
        raise ValidationFailed.field("subject", "is required")
    if body.template_id and body.document_ids:
        raise ValidationFailed(
            "Use templateId or documentIds, not both",
            [FieldError("templateId", "cannot be combined with documentIds")],
        )
    if body.template_id:  # the route expands templates before it gets here
        raise ValidationFailed.field("templateId", f"no template {body.template_id[:60]}")
    if not body.document_ids:
        raise ValidationFailed.field("documentIds", "at least one document id is required")
    documents = parts.tenant_documents(session, ctx, body.document_ids)
    recipients_in = body.recipients or []
    parts.check_recipients(recipients_in)
    fields_in = body.fields or []
    parts.check_fields(fields_in, recipients_in, documents)
    envelope = plain_row(
        Envelope,
        id=new_id("envelope"),
        account_id=ctx.account_id,
        environment=ctx.environment,
        workspace_id=parts.workspace_id(session, ctx, body.workspace_id),
        subject=body.subject,
        message=body.message or "",
        signature_level=body.signature_level or "SIMPLE",
        category=body.category.value if body.category else categories.infer(body.subject),
        tags=body.tags or [],
        locale=body.locale or "en",
        redirect_url=body.redirect_url,
        initials_on_every_page=bool(body.initials_on_every_page),
        metadata_=body.metadata or {},
        template_id=template_id,
        expires_at=parts.future("expiresAt", body.expires_at, now),
        send_at=parts.future("sendAt", body.send_at, now),
        **_reminders(session, ctx, body.reminders),
        created_at=now,
        updated_at=now,
    )
    recipients = parts.write_recipients(
        session, envelope, recipients_in, body.signing_order, secret, replace=False
    )
    insert_rows(session, Envelope, [envelope])
    parts.write_documents(session, envelope, documents, replace=False)
    insert_rows(session, Recipient, recipients)
    fields = parts.write_fields(
        session, envelope, fields_in, recipients, replace=False, placements=placements
    )
    audit.record(
        session,
        envelope.id,
        "envelope.created",
        actor or audit.api_actor(ctx.key_id),
        {"subject": envelope.subject, "documents": [d.id for d in documents]},
        at=now,
    )
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
    agg = load(session, ctx, envelope_id, lock=True)
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
    if "reminders" in given:
        for name, value in _reminders(session, ctx, body.reminders).items():
            setattr(envelope, name, value)
    if "expires_at" in given:
        envelope.expires_at = parts.future("expiresAt", body.expires_at, now)
    if "send_at" in given:
        envelope.send_at = parts.future("sendAt", body.send_at, now)
    if "workspace_id" in given:
        envelope.workspace_id = parts.workspace_id(session, ctx, body.workspace_id)

    documents = parts.tenant_documents(session, ctx, agg.document_ids)
    if "document_ids" in given:
        if not body.document_ids:
            raise ValidationFailed.field("documentIds", "at least one document id is required")
        documents = parts.tenant_documents(session, ctx, body.document_ids)
        parts.write_documents(session, envelope, documents)

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
                locale=r.locale,
            )
            for r in agg.recipients
        ]
    parts.check_recipients(recipients_in)
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
        parts.check_fields(fields_in, recipients_in, documents)
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
        recipients = parts.write_recipients(session, envelope, recipients_in, requested, secret)
        insert_rows(session, Recipient, recipients)
        parts.write_fields(session, envelope, fields_in, recipients)
    elif "fields" in given or "document_ids" in given:
        # new documents: the fields are written again, unplaced, and placed after commit
        parts.write_fields(session, envelope, fields_in, agg.recipients)
    envelope.updated_at = now
    session.add(envelope)
    session.flush()
    return load(session, ctx, envelope_id)


def delete(session: Session, ctx: AuthContext, envelope_id: str) -> None:
    agg = load(session, ctx, envelope_id, lock=True)
    lifecycle.ensure_deletable(state_of(agg))
    for model in (EnvelopeField, Recipient, EnvelopeDocument):
        session.exec(sql_delete(model).where(col(model.envelope_id) == envelope_id))  # type: ignore[call-overload, attr-defined]
    session.delete(agg.envelope)


def _reminders(session: Session, ctx: AuthContext, given: RemindersIn | None) -> dict[str, int]:
    """The envelope's reminder cadence: as given, else the account's default."""
    if given is not None:
        return {
            "reminder_interval_days": given.interval_days,
            "reminder_max_count": given.max_count if given.interval_days else 0,
        }
    account = session.get(Account, ctx.account_id)
    interval = account.reminder_interval_days if account else 0
    return {
        "reminder_interval_days": interval,
        "reminder_max_count": account.reminder_max_count if account and interval else 0,
    }


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
    actor: Actor | None = None,
    details: dict[str, Any] | None = None,
    **extra: object,
) -> None:
    """Write a lifecycle transition and everything that follows from it, in the caller's
    transaction: statuses and times, one audit entry and one outbox event per event, the
    invitations and notices (tasks), reminders scheduled or stopped, and the finalize job
    (seal, audit trail) once the envelope is finished. ``subject_id`` is the recipient who
    acted; ``details`` go into the audit entries."""
    envelope = agg.envelope
    new_status = transition.state.status
    envelope.status = new_status.value
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
    if transition.events[:1] in (("envelope.sent",), ("envelope.resubmitted",)):
        _schedule_reminders(envelope, now)
    if "envelope.resubmitted" in transition.events:
        # the document may have changed: earlier signatures and values no longer hold (the
        # audit log keeps what happened)
        for model in (FieldValue, Signature):
            session.exec(sql_delete(model).where(col(model.envelope_id) == envelope.id))  # type: ignore[call-overload, attr-defined]
    if new_status.is_finished and envelope.finished_at is None:
        envelope.finished_at = now
        envelope.next_reminder_at = None
        if new_status is lifecycle.EnvelopeStatus.COMPLETED:
            envelope.completed_at = now
        enqueue(
            session,
            "finalize",
            {"envelopeId": envelope.id},
            envelope_id=envelope.id,
            key=envelope.id,
        )
    session.add(envelope)
    who = actor or audit.api_actor(ctx.key_id)
    for event in transition.events:
        audit.record(session, envelope.id, event, who, details, at=now)
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
    notices.invite(session, envelope, [by_id[rid] for rid in transition.invited])
    notices.on_events(session, envelope, agg.recipients, transition.events, actor_id=subject_id)


def _schedule_reminders(envelope: Envelope, now: datetime) -> None:
    """Reminders restart whenever the envelope is (re)sent."""
    envelope.reminders_sent = 0
    if envelope.reminder_interval_days > 0 and envelope.reminder_max_count > 0:
        envelope.next_reminder_at = now + timedelta(days=envelope.reminder_interval_days)
    else:
        envelope.next_reminder_at = None


def send(
    session: Session, ctx: AuthContext, envelope_id: str, actor: Actor | None = None
) -> EnvelopeAggregate:
    """DRAFT → SENT (or SCHEDULED when ``sendAt`` is ahead): the first group is invited."""
    now = utcnow()
    agg = load(session, ctx, envelope_id, lock=True)
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
    if scheduled:
        audit.record(
            session,
            envelope.id,
            "envelope.scheduled",
            actor or audit.api_actor(ctx.key_id),
            {"sendAt": iso(envelope.send_at)},
            at=now,
        )
    apply(session, ctx, agg, transition, now=now, actor=actor)
    session.flush()
    return agg


def void(
    session: Session,
    ctx: AuthContext,
    envelope_id: str,
    reason: str | None,
    actor: Actor | None = None,
) -> EnvelopeAggregate:
    now = utcnow()
    agg = load(session, ctx, envelope_id, lock=True)
    transition = lifecycle.void(state_of(agg))
    agg.envelope.voided_at = now
    agg.envelope.void_reason = reason or None
    apply(
        session,
        ctx,
        agg,
        transition,
        now=now,
        actor=actor,
        details={"reason": reason or None},
        voidReason=reason or None,
    )
    session.flush()
    return agg
