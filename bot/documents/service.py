"""Document use cases: ingest an upload, describe, list, delete, read back."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session, col, func, select

from bot.accounts.context import AuthContext, get_owned
from bot.documents.models import Document
from bot.envelopes.models import Envelope, EnvelopeDocument
from bot.errors import Conflict, ValidationFailed
from bot.timeutil import utcnow


@dataclass(frozen=True)
class Ingested:
    """What ``prepare`` and storage made of an upload, ready to become a row."""

    id: str
    name: str
    filename: str
    mime_type: str
    size: int
    sha256: str
    page_count: int
    storage_key: str
    pdf_storage_key: str
    pdf_sha256: str


def storage_keys(ctx: AuthContext, document_id: str, converted: bool) -> tuple[str, str]:
    base = f"{ctx.account_id}/{ctx.environment}/{document_id}"
    return f"{base}/original", (f"{base}/document.pdf" if converted else f"{base}/original")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def display_name(name: str | None, filename: str) -> str:
    chosen = (name or "").strip() or filename
    if len(chosen) > 255:
        raise ValidationFailed.field("name", "must be at most 255 characters")
    return "".join(ch for ch in chosen if ch.isprintable()) or "document.pdf"


def record(session: Session, ctx: AuthContext, item: Ingested) -> Document:
    document = Document(
        id=item.id,
        account_id=ctx.account_id,
        environment=ctx.environment,
        name=item.name,
        filename=item.filename,
        mime_type=item.mime_type,
        size=item.size,
        sha256=item.sha256,
        page_count=item.page_count,
        storage_key=item.storage_key,
        pdf_storage_key=item.pdf_storage_key,
        pdf_sha256=item.pdf_sha256,
        created_at=utcnow(),
    )
    session.add(document)
    return document


def get(session: Session, ctx: AuthContext, document_id: str) -> Document:
    return get_owned(session, Document, "document", ctx, document_id)


def list_documents(
    session: Session, ctx: AuthContext, *, offset: int, limit: int
) -> tuple[list[Document], int]:
    where = (Document.account_id == ctx.account_id, Document.environment == ctx.environment)
    rows = list(
        session.exec(
            select(Document)
            .where(*where)
            .order_by(col(Document.created_at).desc(), col(Document.id).desc())
            .offset(offset)
            .limit(limit)
        )
    )
    return rows, session.exec(select(func.count()).select_from(Document).where(*where)).one()


def delete(session: Session, ctx: AuthContext, document_id: str) -> Document:
    """Remove a document no envelope uses; the caller deletes the files after commit."""
    document = get(session, ctx, document_id)
    user = session.exec(
        select(Envelope.id, Envelope.status)
        .join(EnvelopeDocument, col(EnvelopeDocument.envelope_id) == col(Envelope.id))
        .where(EnvelopeDocument.document_id == document.id)
    ).first()
    if user is not None:
        env_id, status = user
        if status == "DRAFT":
            raise Conflict(
                f"Document {document.id} is used by draft envelope {env_id}; "
                "delete the envelope or remove the document from it first"
            )
        raise Conflict(
            f"Document {document.id} is part of envelope {env_id}, which was sent ({status}); "
            "it is kept as evidence"
        )
    session.delete(document)
    return document
