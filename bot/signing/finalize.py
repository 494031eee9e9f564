"""The finalize job: seal a completed envelope's documents, seal every finished envelope's
audit trail, then announce it (``envelope.completed``, completion emails).

It runs as a ``finalize`` task queued in the transaction that finished the envelope, retried
with backoff for as long as it takes (a timestamp authority down for a night delays the seal,
it never loses it). Each step is idempotent and recorded as it completes: a retry skips the
seal once ``sealed_at`` is set, and the announcement is written in the same transaction as
the audit trail's key, so it happens exactly once. PDF work runs in a thread; the seal is
pyHanko's async signer on the loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass

from sqlmodel import Session, col, select

from bot import metrics
from bot.accounts.context import AuthContext
from bot.accounts.models import Account
from bot.db import Database
from bot.documents import anchors
from bot.documents.models import Document
from bot.documents.storage import Storage
from bot.envelopes import audit, notices
from bot.envelopes.events import envelope_data
from bot.envelopes.models import (
    Envelope,
    EnvelopeDocument,
    EnvelopeField,
    FieldValue,
    Recipient,
    Signature,
)
from bot.jobs.models import Task
from bot.jobs.outbox import emit
from bot.signing import ceremony, stamping
from bot.signing.audit_pdf import AuditDocument, AuditRecipient, AuditTrail, render_audit_trail
from bot.signing.compose import Composition, Party, SignatureMark, SourceDocument, compose
from bot.signing.seal import Sealer
from bot.signing.stamp import stamp
from bot.timeutil import iso, utcnow
from bot.web.paths import API_PREFIX

log = logging.getLogger("signbot.signing")

AUTHENTICATION = {None: "Email link", "EMAIL_OTP": "Email one-time code"}


@dataclass
class Snapshot:
    """Everything the PDFs need, read in one short transaction."""

    envelope: Envelope
    account_name: str
    documents: list[tuple[int, Document]]
    recipients: list[Recipient]
    signatures: dict[str, Signature]
    fields: list[EnvelopeField]
    values: dict[str, str]


def _snapshot(session: Session, envelope_id: str) -> Snapshot | None:
    envelope = session.get(Envelope, envelope_id)
    if envelope is None:
        return None
    account = session.get(Account, envelope.account_id)
    documents = [
        (link.position, doc)
        for link, doc in session.exec(
            select(EnvelopeDocument, Document)
            .join(Document, col(Document.id) == col(EnvelopeDocument.document_id))
            .where(EnvelopeDocument.envelope_id == envelope_id)
            .order_by(col(EnvelopeDocument.position))
        )
    ]
    recipients = list(
        session.exec(
            select(Recipient)
            .where(Recipient.envelope_id == envelope_id)
            .order_by(col(Recipient.position))
        )
    )
    signatures = {
        s.recipient_id: s
        for s in session.exec(select(Signature).where(Signature.envelope_id == envelope_id))
    }
    fields = list(
        session.exec(
            select(EnvelopeField)
            .where(EnvelopeField.envelope_id == envelope_id)
            .order_by(col(EnvelopeField.position))
        )
    )
    values = {
        v.field_id: v.value
        for v in session.exec(select(FieldValue).where(FieldValue.envelope_id == envelope_id))
    }
    session.expunge_all()  # plain objects from here on: the caller reads them after commit
    return Snapshot(
        envelope,
        account.name if account else "",
        documents,
        recipients,
        signatures,
        fields,
        values,
    )


def _context(envelope: Envelope) -> AuthContext:
    return AuthContext("system", envelope.account_id, envelope.environment, frozenset())


class Finalizer:
    def __init__(self, db: Database, storage: Storage, sealer: Sealer, public_url: str) -> None:
        self.db = db
        self.storage = storage
        self.sealer = sealer
        self.public_url = public_url

    async def __call__(self, task: Task) -> None:
        envelope_id = str(task.payload["envelopeId"])
        snap = await self.db.run(lambda s: _snapshot(s, envelope_id))
        if snap is None:
            return
        envelope = snap.envelope
        if envelope.audit_trail_key is not None:
            return  # done by an earlier run whose "done" was lost
        hashes: list[tuple[str, str]] = []
        if envelope.status == "COMPLETED":
            hashes = await self._seal_documents(snap)
            snap = await self.db.run(lambda s: _snapshot(s, envelope_id))
            assert snap is not None
        await self._seal_audit_trail(snap, hashes)

    async def _seal_documents(self, snap: Snapshot) -> list[tuple[str, str]]:
        """Compose and seal the signed PDF once; answers (sha256 before, after) per document."""
        envelope = snap.envelope
        sources = []
        for index, doc in snap.documents:
            pdf = await self.storage.read_bytes(doc.pdf_storage_key)
            pdf = await asyncio.to_thread(_stamped, pdf, snap, index)
            sources.append(SourceDocument(doc.name, pdf, doc.sha256))
        spec = Composition(
            envelope_id=envelope.id,
            subject=envelope.subject,
            account_name=snap.account_name,
            test_mode=envelope.environment == "test",
            documents=tuple(sources),
            signatures=tuple(_marks(snap)),
            parties=tuple(
                Party(r.name, r.email, r.role, r.status, recipient_id=r.id) for r in snap.recipients
            ),
            completed_at=envelope.completed_at or utcnow(),
            placed=stamping.placed_signers(snap.fields),
        )
        composed = await asyncio.to_thread(compose, spec)
        hashes = [(d.sha256_before, d.sha256_after) for d in composed.documents]
        if envelope.sealed_at is not None and envelope.signed_sha256:
            return hashes
        key, digest = await self._seal_and_store(
            snap, composed.pdf, "signbot-seal", f"Signed envelope {envelope.id}", "signed"
        )

        def record(session: Session) -> None:
            row = session.get(Envelope, envelope.id, with_for_update=True)
            assert row is not None
            if row.sealed_at is not None:
                return  # another run sealed it first; its file and entries stand
            row.signed_document_key, row.signed_sha256, row.sealed_at = key, digest, utcnow()
            session.add(row)
            audit.record(
                session,
                envelope.id,
                "envelope.sealed",
                audit.SYSTEM,
                {
                    "sha256": digest,
                    "pages": composed.pages,
                    "level": self.sealer.level,
                    "certificate": self.sealer.identity.cert.subject.human_friendly,
                    "documents": [
                        {
                            "name": d.name,
                            "sha256Before": d.sha256_before,
                            "sha256After": d.sha256_after,
                        }
                        for d in composed.documents
                    ],
                },
            )
            audit.record(session, envelope.id, "envelope.completed", audit.SYSTEM, {})

        await self.db.run(record)
        log.info(
            "envelope %s sealed (%s, %d pages)", envelope.id, self.sealer.level, composed.pages
        )
        return hashes

    async def _seal_audit_trail(self, snap: Snapshot, hashes: list[tuple[str, str]]) -> None:
        envelope = snap.envelope
        entries = await self.db.run(lambda s: audit.entries(s, envelope.id))
        after = {before: later for before, later in hashes}
        trail = AuditTrail(
            envelope_id=envelope.id,
            subject=envelope.subject,
            account_name=snap.account_name,
            environment=envelope.environment,
            status=envelope.status,
            created_at=envelope.created_at,
            finished_at=envelope.finished_at,
            documents=tuple(
                AuditDocument(doc.name, doc.page_count, doc.sha256, after.get(doc.sha256))
                for _, doc in snap.documents
            ),
            recipients=tuple(
                AuditRecipient(
                    r.name,
                    r.email,
                    r.role,
                    AUTHENTICATION.get(r.authentication, r.authentication),
                    r.status,
                )
                for r in snap.recipients
            ),
            entries=tuple(entries),
            consent_version=ceremony.CONSENT_VERSION,
            consent_text=ceremony.CONSENT_TEXT,
            signed_document_sha256=envelope.signed_sha256,
            generated_at=utcnow(),
        )
        pdf = await asyncio.to_thread(render_audit_trail, trail)
        key, _ = await self._seal_and_store(
            snap, pdf, "signbot-audit-seal", f"Audit trail of envelope {envelope.id}", "audit-trail"
        )
        await self.db.run(lambda s: self._announce(s, envelope.id, key))

    async def _seal_and_store(
        self, snap: Snapshot, pdf: bytes, field: str, reason: str, stem: str
    ) -> tuple[str, str]:
        """Seal ``pdf`` and store it under a key named by its hash: a second run (a lease that
        ran out) never overwrites the file the database points at. Answers (key, sha256)."""
        envelope = snap.envelope
        sealed = await metrics.observe_seal(
            self.sealer.seal(
                pdf,
                field_name=field,
                reason=reason,
                location=self.public_url,
                name=snap.account_name or "signbot",
            )
        )
        digest = hashlib.sha256(sealed).hexdigest()
        key = f"{envelope.account_id}/{envelope.id}/{stem}-{digest[:16]}.pdf"
        await self.storage.put_bytes(key, sealed)
        return key, digest

    def _announce(self, session: Session, envelope_id: str, key: str) -> None:
        """Record the audit trail and, for a completed envelope, tell everyone — once."""
        envelope = session.get(Envelope, envelope_id, with_for_update=True)
        if envelope is None or envelope.audit_trail_key is not None:
            return
        envelope.audit_trail_key = key
        session.add(envelope)
        if envelope.status != "COMPLETED":
            return
        recipients = list(
            session.exec(
                select(Recipient)
                .where(Recipient.envelope_id == envelope_id)
                .order_by(col(Recipient.position))
            )
        )
        base = f"{self.public_url}{API_PREFIX}/envelopes/{envelope.id}"
        emit(
            session,
            account_id=envelope.account_id,
            environment=envelope.environment,
            event="envelope.completed",
            envelope_id=envelope.id,
            data=envelope_data(
                envelope,
                recipients,
                completedAt=iso(envelope.completed_at),
                signedDocumentUrl=f"{base}/signed-document",
                auditTrailUrl=f"{base}/audit-trail",
                proof_pdf_url=f"{base}/audit-trail",
                signedDocumentSha256=envelope.signed_sha256,
            ),
        )
        for recipient in recipients:
            notices.mail(session, envelope, recipient, "completed")


def _stamped(pdf: bytes, snap: Snapshot, index: int) -> bytes:
    """The document with its signers' fields drawn in (PDF work: run it in a thread)."""
    stamps = stamping.stamps_for(snap, index, anchors.page_sizes(pdf))
    return stamp(pdf, stamps) if stamps else pdf


def _marks(snap: Snapshot) -> list[SignatureMark]:
    marks = []
    for r in snap.recipients:
        signature = snap.signatures.get(r.id)
        if signature is None or r.status not in ("SIGNED", "APPROVED"):
            continue
        marks.append(
            SignatureMark(
                recipient_id=r.id,
                name=signature.name,
                email=r.email,
                role=r.role,
                signed_at=signature.signed_at,
                drawn_png=signature.image_png,
                typed=signature.typed,
                ip=signature.ip,
                authentication=r.authentication,
            )
        )
    return marks
