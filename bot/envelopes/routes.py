"""Routes: ``/envelopes``. Thin: parse → service (one transaction) → presenter."""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlmodel import Session

from bot.accounts.context import AuthContext
from bot.documents import purge
from bot.documents import service as documents
from bot.documents.routes import ingest_file
from bot.documents.storage import StorageUnavailable
from bot.envelopes import (
    audit,
    from_template,
    parts,
    placement,
    queries,
    reminders,
    service,
)
from bot.envelopes.lifecycle import EnvelopeStatus, Role, is_finished
from bot.envelopes.presenters import EnvelopeAggregate, envelope_json
from bot.envelopes.schemas import (
    CreateEnvelopeIn,
    UpdateEnvelopeIn,
    VoidIn,
)
from bot.errors import (
    Conflict,
    FieldError,
    Gone,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)
from bot.web.auth import AuthenticatedRoute, requires
from bot.web.pagination import Page, page_params
from bot.web.paths import API_PREFIX
from bot.web.responses import Done, idempotent

router = APIRouter(prefix=API_PREFIX, tags=["Envelopes"], route_class=AuthenticatedRoute)
log = logging.getLogger("signbot.envelopes")

StatusFilter = Literal[
    "DRAFT",
    "SCHEDULED",
    "SENT",
    "DELIVERED",
    "PARTIALLY_SIGNED",
    "COMPLETED",
    "DECLINED",
    "VOIDED",
    "EXPIRED",
    "RETURNED_TO_SENDER",
]


async def _placements(
    request: Request, ctx: AuthContext, document_ids: list[str], fields: list[Any]
) -> list[placement.Placement | None] | None:
    """Where the fields go, resolved before the create transaction (it reads the PDFs)."""
    if not fields or not document_ids:
        return None
    state = request.app.state
    keys = await state.db.run(
        lambda s: placement.pdf_keys_for(s, ctx.account_id, ctx.environment, document_ids)
    )
    if len(keys) != len(document_ids):
        return None  # unknown documents: the create answers 400 for them
    return await placement.place(state.storage, keys, fields)


def _actor(request: Request, ctx: AuthContext) -> audit.Actor:
    """The API caller as the audit log names it: key, address and client."""
    client = request.client.host if request.client else None
    return audit.api_actor(ctx.key_id, client, request.headers.get("user-agent"))


def _with_tokens(request: Request, agg: EnvelopeAggregate) -> dict[str, Any]:
    state = request.app.state
    return envelope_json(agg, queries.access_tokens(state.token_secret, agg), state.public_url)


_TOKEN_MEMBERS = ("accessToken", "signUrl")


def _without_tokens(payload: dict[str, Any]) -> dict[str, Any]:
    """An answer fit to keep for replays: signing tokens are derived, never stored."""
    out = copy.deepcopy(payload)
    for member in ("recipients", "signers"):
        for recipient in out.get(member, []):
            for name in _TOKEN_MEMBERS:
                recipient.pop(name, None)
    return out


def _token_restorer(request: Request, ctx: AuthContext) -> Any:
    async def restore(payload: dict[str, Any]) -> dict[str, Any]:
        """Derive the tokens again (current versions: a revoked link stays revoked)."""
        try:
            agg = await request.app.state.db.read(lambda c: queries.read(c, ctx, payload["id"]))
        except NotFound:
            return payload  # deleted since: nothing left to sign
        fresh = _with_tokens(request, agg)
        by_id = {r["id"]: r for r in fresh["recipients"]}
        for member in ("recipients", "signers"):
            for recipient in payload.get(member, []):
                current = by_id.get(recipient.get("id"), {})
                recipient.update({k: current[k] for k in _TOKEN_MEMBERS if k in current})
        return payload

    return restore


@router.post("/envelopes", status_code=201, summary="Create envelope (status: DRAFT)")
async def create_envelope(
    body: CreateEnvelopeIn, request: Request, ctx: AuthContext = requires("envelopes:write")
) -> Any:
    """A DRAFT from ``documentIds`` (or ``templateId``) and ``recipients``; answers each
    recipient's ``accessToken`` and ``signUrl``. The older one-shot form (``signers`` +
    ``documents[{name, base64Pdf}]``) creates **and sends**, answering ``signers[].signUrl``."""
    db = request.app.state.db
    secret = request.app.state.token_secret
    if body.is_legacy:
        return await idempotent(
            request,
            ctx,
            lambda done: _create_legacy(request, ctx, body, done),
            keep=_without_tokens,
            restore=_token_restorer(request, ctx),
        )

    actor = _actor(request, ctx)

    async def handler(done: Done) -> tuple[int, dict[str, Any]]:
        # a template brings documents, roles and fields: after this, an ordinary request
        given = await from_template.expand(request, ctx, body) if body.template_id else body
        placements = await _placements(request, ctx, given.document_ids or [], given.fields or [])

        def work(session: Session) -> dict[str, Any]:
            created = service.create(
                session,
                ctx,
                given,
                secret=secret,
                actor=actor,
                placements=placements,
                template_id=body.template_id,
            )
            payload = _with_tokens(request, created)
            done(session, 201, payload)
            return payload

        return 201, await db.run(work)

    return await idempotent(
        request, ctx, handler, keep=_without_tokens, restore=_token_restorer(request, ctx)
    )


async def _create_legacy(
    request: Request, ctx: AuthContext, body: CreateEnvelopeIn, done: Done
) -> tuple[int, dict[str, Any]]:
    actor = _actor(request, ctx)
    if body.recipients or body.document_ids or body.template_id:
        raise ValidationFailed(
            "The one-shot form (signers + documents) cannot be mixed with "
            "recipients, documentIds or templateId"
        )
    if not body.signers:
        raise ValidationFailed.field("signers", "at least one signer is required")
    if not body.documents:
        raise ValidationFailed.field("documents", "at least one document is required")
    signers = [s.model_copy(update={"role": Role.SIGNER}) for s in body.signers]
    parts.check_recipients(signers, field="signers")  # before anything is stored
    settings = request.app.state.settings
    tmp_root = settings.data_dir / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(dir=tmp_root))
    items: list[documents.Ingested] = []
    try:
        for i, doc in enumerate(body.documents):
            path, size, digest = await anyio.to_thread.run_sync(
                _decode_base64, doc.base64_pdf, work_dir / f"doc{i}", settings.max_upload_bytes, i
            )
            items.append(
                await ingest_file(
                    request,
                    ctx,
                    path,
                    filename=doc.name or f"document-{i + 1}.pdf",
                    name=doc.name,
                    size=size,
                    sha256=digest,
                    work_dir=work_dir,
                )
            )
        modern = body.model_copy(
            update={
                "subject": body.subject or items[0].name,
                "document_ids": [item.id for item in items],
                "recipients": signers,
                "signers": None,
                "documents": None,
            }
        )
        secret = request.app.state.token_secret

        def work(session: Session) -> dict[str, Any]:
            for item in items:
                documents.record(session, ctx, item)
            session.flush()
            agg = service.create(session, ctx, modern, secret=secret, actor=actor)
            out = _with_tokens(request, service.send(session, ctx, agg.envelope.id, actor))
            out["signers"] = [
                {k: r[k] for k in ("id", "email", "name", "status", "accessToken", "signUrl")}
                for r in out["recipients"]
            ]
            done(session, 201, out)
            return out

        out = await request.app.state.db.run(work)
    except BaseException:
        # Nothing refers to the files of a request that failed: leave none behind.
        keys = [k for item in items for k in (item.storage_key, item.pdf_storage_key)]
        await purge.discard(request.app.state.db, request.app.state.storage, keys)
        raise
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 201, out


def _decode_base64(data: str, path: Path, limit: int, index: int) -> tuple[Path, int, str]:
    field = f"documents.{index}.base64Pdf"
    if data.startswith("data:"):
        _, _, data = data.partition(",")
    compact = "".join(data.split())
    if len(compact) * 3 // 4 > limit + 3:
        raise PayloadTooLarge(f"{field}: the file exceeds {limit // (1024 * 1024)} MB")
    try:
        raw = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed(
            f"{field}: is not valid base64", [FieldError(field, "is not valid base64")]
        ) from None
    if not raw:
        raise ValidationFailed(f"{field}: is empty", [FieldError(field, "is empty")])
    if len(raw) > limit:
        raise PayloadTooLarge(f"{field}: the file exceeds {limit // (1024 * 1024)} MB")
    path.write_bytes(raw)
    return path, len(raw), hashlib.sha256(raw).hexdigest()


@router.get("/envelopes", summary="List envelopes")
async def list_envelopes(
    request: Request,
    ctx: AuthContext = requires("envelopes:read"),
    page: Page = Depends(page_params),
    status: StatusFilter | None = Query(None, description="Only envelopes in this status."),
) -> Any:
    rows, total = await request.app.state.db.run(
        lambda s: queries.list_envelopes(
            s, ctx, offset=page.offset, limit=page.limit, status=status
        )
    )
    public_url = request.app.state.public_url
    return page.wrap([envelope_json(a, None, public_url) for a in rows], total)


@router.get("/envelopes/{envelope_id}", summary="Fetch envelope state")
async def get_envelope(
    envelope_id: str, request: Request, ctx: AuthContext = requires("envelopes:read")
) -> Any:
    agg = await request.app.state.db.read(lambda c: queries.read(c, ctx, envelope_id))
    return JSONResponse(envelope_json(agg, None, request.app.state.public_url))


@router.patch("/envelopes/{envelope_id}", summary="Update DRAFT envelope")
async def update_envelope(
    envelope_id: str,
    body: UpdateEnvelopeIn,
    request: Request,
    ctx: AuthContext = requires("envelopes:write"),
) -> Any:
    state = request.app.state
    secret = state.token_secret
    agg = await state.db.run(lambda s: service.update(s, ctx, envelope_id, body, secret=secret))
    changed = body.model_fields_set & {"fields", "document_ids", "recipients"}
    if changed and agg.fields:
        try:
            await placement.refresh(state.db, state.storage, ctx, envelope_id, only_missing=False)
        except StorageUnavailable as exc:
            # The change is saved (answering 503 would invite a retry of a done update): the
            # fields are placed at send instead, which a storage outage makes wait in turn.
            log.warning("envelope %s: fields left to be placed at send: %s", envelope_id, exc)
            await state.db.run(lambda s: placement.unplace(s, envelope_id))
        agg = await state.db.run(lambda s: queries.load(s, ctx, envelope_id))
    return envelope_json(agg, None, state.public_url)


@router.delete("/envelopes/{envelope_id}", summary="Delete DRAFT envelope")
async def delete_envelope(
    envelope_id: str, request: Request, ctx: AuthContext = requires("envelopes:write")
) -> Any:
    """DRAFT only; a sent envelope answers 409 (void it with ``POST …/void``)."""
    await request.app.state.db.run(lambda s: service.delete(s, ctx, envelope_id))
    return {"success": True}


@router.post("/envelopes/{envelope_id}/send", summary="Dispatch DRAFT — sends invitations")
async def send_envelope(
    envelope_id: str, request: Request, ctx: AuthContext = requires("envelopes:write")
) -> Any:
    actor = _actor(request, ctx)
    # fields written by an older version, or whose placement failed, are placed now
    state = request.app.state
    await placement.refresh(state.db, state.storage, ctx, envelope_id, only_missing=True)

    async def handler(done: Done) -> tuple[int, dict[str, Any]]:
        def work(session: Session) -> dict[str, Any]:
            payload = _with_tokens(request, service.send(session, ctx, envelope_id, actor))
            done(session, 200, payload)
            return payload

        return 200, await request.app.state.db.run(work)

    return await idempotent(
        request,
        ctx,
        handler,
        body=b"",
        keep=_without_tokens,
        restore=_token_restorer(request, ctx),
    )


@router.post("/envelopes/{envelope_id}/void", summary="Void a sent envelope")
async def void_envelope(
    envelope_id: str,
    request: Request,
    body: VoidIn | None = None,
    ctx: AuthContext = requires("envelopes:write"),
) -> Any:
    reason = body.reason if body else None

    actor = _actor(request, ctx)

    async def handler(done: Done) -> tuple[int, dict[str, Any]]:
        def work(session: Session) -> dict[str, Any]:
            agg = service.void(session, ctx, envelope_id, reason, actor)
            payload = envelope_json(agg, None, request.app.state.public_url)
            done(session, 200, payload)
            return payload

        return 200, await request.app.state.db.run(work)

    return await idempotent(request, ctx, handler)


@router.post("/envelopes/{envelope_id}/remind", summary="Remind pending recipients now")
async def remind_envelope(
    envelope_id: str, request: Request, ctx: AuthContext = requires("envelopes:write")
) -> Any:
    """Extension: a reminder email (and SMS) to every signer or approver who still has to
    act, now. Answers who was reminded; 409 when the envelope is not in progress."""
    actor = _actor(request, ctx)

    def work(session: Session) -> dict[str, Any]:
        _, waiting = reminders.remind_now(session, ctx, envelope_id, actor)
        return {
            "success": True,
            "reminded": [{"id": r.id, "email": r.email, "name": r.name} for r in waiting],
        }

    payload = await request.app.state.db.run(work)
    _wake(request)
    return payload


def _wake(request: Request) -> None:
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        worker.wake()


async def _stored_pdf(request: Request, key: str | None, filename: str) -> Response:
    """A stored PDF as an attachment; 410 when retention purged it."""
    storage = request.app.state.storage
    try:
        data = await storage.read_bytes(key) if key else None
    except FileNotFoundError:
        data = None
    if data is None:
        raise Gone(f"The file {filename} is no longer available (purged by retention)")
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/envelopes/{envelope_id}/signed-document",
    summary="Download signed PDF (once COMPLETED)",
    responses={200: {"content": {"application/pdf": {}}}},
)
async def signed_document(
    envelope_id: str, request: Request, ctx: AuthContext = requires("envelopes:read")
) -> Any:
    """The sealed PDF: every document, the signature page and the certificate page, sealed
    with the deployment's certificate (PAdES). 409 before COMPLETED, and for the moment
    between the last signature and the seal (``Retry-After`` says when to look again)."""
    envelope = (
        await request.app.state.db.run(lambda s: queries.load(s, ctx, envelope_id))
    ).envelope
    if envelope.status != EnvelopeStatus.COMPLETED:
        raise Conflict(
            f"Envelope is {envelope.status}; the signed document exists once it is COMPLETED"
        )
    if envelope.sealed_at is None:
        raise Conflict(
            "Envelope is COMPLETED and its signed document is being sealed; retry in a few seconds",
            retry_after=2,
        )
    return await _stored_pdf(request, envelope.signed_document_key, f"{envelope.id}-signed.pdf")


@router.get(
    "/envelopes/{envelope_id}/audit-trail",
    summary="Download eIDAS audit-trail PDF",
    responses={200: {"content": {"application/pdf": {}}}},
)
async def audit_trail(
    envelope_id: str, request: Request, ctx: AuthContext = requires("envelopes:read")
) -> Any:
    """The sealed audit trail (every event, hash-chained). 409 while the envelope is in
    progress; 200 once it is COMPLETED, DECLINED, VOIDED or EXPIRED."""
    envelope = (
        await request.app.state.db.run(lambda s: queries.load(s, ctx, envelope_id))
    ).envelope
    if not is_finished(EnvelopeStatus(envelope.status)):
        raise Conflict(
            f"Envelope is {envelope.status}; the audit trail is available once it is "
            "finished (COMPLETED, DECLINED, VOIDED or EXPIRED)"
        )
    if envelope.audit_trail_key is None:
        raise Conflict(
            f"Envelope is {envelope.status}; its audit trail is being sealed, retry in a few "
            "seconds",
            retry_after=2,
        )
    return await _stored_pdf(request, envelope.audit_trail_key, f"{envelope.id}-audit-trail.pdf")
