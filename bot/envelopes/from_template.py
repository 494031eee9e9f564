"""``templateId`` on create: the template brings its documents, roles, fields and defaults;
the recipients given fill its roles in order.

The expansion turns the request into an ordinary one (``documentIds``, ``recipients`` with
their roles and orders, ``fields`` addressed to the recipients' emails), so everything after it
— validation, placement, the lifecycle — is the same code path as a hand-made envelope.
A template's PDF becomes one of the tenant's documents the first time it is used and is reused
afterwards (same file hash), so using a template a thousand times stores it once.
"""

from __future__ import annotations

import hashlib
import tempfile
from datetime import timedelta
from pathlib import Path

import anyio.to_thread
from fastapi import Request
from sqlmodel import Session, select

from bot.accounts.context import AuthContext
from bot.documents import purge
from bot.documents import service as documents
from bot.documents.models import Document
from bot.documents.routes import ingest_file
from bot.envelopes.lifecycle import Role, SigningOrder
from bot.envelopes.schemas import CreateEnvelopeIn, FieldIn, RecipientIn, RemindersIn
from bot.errors import FieldError, ValidationFailed
from bot.templates.spec import Template
from bot.timeutil import utcnow


def _template(request: Request, template_id: str) -> Template:
    registry = getattr(request.app.state, "templates", None)
    template = registry.get(template_id) if registry is not None else None
    if template is None:
        raise ValidationFailed.field("templateId", f"no template {template_id[:80]}")
    return template


def _recipients(template: Template, given: list[RecipientIn]) -> list[RecipientIn]:
    roles = template.roles
    if len(given) != len(roles):
        names = ", ".join(f"{i + 1}. {r.name} ({r.role})" for i, r in enumerate(roles))
        raise ValidationFailed(
            f"Template {template.id} has {len(roles)} role(s): {names}; give one recipient "
            f"per role, in that order ({len(given)} given)",
            [FieldError("recipients", f"expected {len(roles)} recipient(s), one per role")],
        )
    return [
        recipient.model_copy(update={"role": Role(role.role), "order": role.order})
        for recipient, role in zip(given, roles, strict=True)
    ]


def _fields(template: Template, recipients: list[RecipientIn]) -> list[FieldIn]:
    return [
        FieldIn(
            recipient_email=recipients[f.role_index].email,
            document_index=f.document_index,
            page_number=f.page_number,
            field_type=f.field_type,
            x=f.x,
            y=f.y,
            width=f.width,
            height=f.height,
            anchor_text=f.anchor_text,
            anchor_placement=f.anchor_placement,
            anchor_index=f.anchor_index,
            required=f.required,
            label=f.label,
            options=list(f.options),
        )
        for f in template.fields
    ]


def _existing(session: Session, ctx: AuthContext, sha256: str, filename: str) -> str | None:
    return session.exec(
        select(Document.id).where(
            Document.account_id == ctx.account_id,
            Document.environment == ctx.environment,
            Document.sha256 == sha256,
            Document.filename == filename,
        )
    ).first()


async def _document_ids(request: Request, ctx: AuthContext, template: Template) -> list[str]:
    """The tenant's copy of each of the template's PDFs (made on first use)."""
    db = request.app.state.db
    ids = []
    for path in template.documents:
        data = await anyio.to_thread.run_sync(Path(path).read_bytes)
        digest = hashlib.sha256(data).hexdigest()
        found = await db.run(lambda s, d=digest, n=path.name: _existing(s, ctx, d, n))
        if found is not None:
            ids.append(found)
            continue
        with tempfile.TemporaryDirectory(prefix="signbot-tpl-") as work:
            copy = Path(work) / "upload"
            copy.write_bytes(data)
            item = await ingest_file(
                request,
                ctx,
                copy,
                filename=path.name,
                name=f"{template.name} ({path.name})"
                if len(template.documents) > 1
                else template.name,
                size=len(data),
                sha256=digest,
                work_dir=Path(work),
            )
        try:
            await db.run(lambda s, i=item: documents.record(s, ctx, i))
        except BaseException:  # no row refers to the stored copy
            keys = [item.storage_key, item.pdf_storage_key]
            await purge.discard(db, request.app.state.storage, keys)
            raise
        ids.append(item.id)
    return ids


async def expand(request: Request, ctx: AuthContext, body: CreateEnvelopeIn) -> CreateEnvelopeIn:
    """The request with the template's contents filled in (what the sender gave wins)."""
    if body.document_ids:
        raise ValidationFailed(
            "Use templateId or documentIds, not both",
            [FieldError("templateId", "cannot be combined with documentIds")],
        )
    assert body.template_id
    template = _template(request, body.template_id)
    recipients = _recipients(template, body.recipients or [])
    given = body.model_fields_set
    update: dict[str, object] = {
        "document_ids": await _document_ids(request, ctx, template),
        "recipients": recipients,
        "fields": [*_fields(template, recipients), *(body.fields or [])],
        "subject": body.subject or template.default_subject,
        "template_id": None,
    }
    if "message" not in given and template.default_message:
        update["message"] = template.default_message
    if "signing_order" not in given:
        update["signing_order"] = SigningOrder(template.signing_order.upper())
    if "reminders" not in given and template.reminders is not None:
        interval, count = template.reminders
        update["reminders"] = RemindersIn(interval_days=interval, max_count=count)
    if "expires_at" not in given and template.expires_in_days:
        update["expires_at"] = utcnow() + timedelta(days=template.expires_in_days)
    return body.model_copy(update=update)
