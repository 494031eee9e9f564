"""Reading envelopes: the aggregate for answers and changes, lists, signing tokens.

``read`` serves ``GET /envelopes/{id}``, the hottest route: prebuilt Core statements on one
plain connection, rows handed to the presenter as they are. ``load`` gives ORM rows for the
use cases that change them.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection, bindparam
from sqlmodel import Session, col, func, select

from bot.accounts.context import AuthContext, get_owned
from bot.envelopes.models import Envelope, EnvelopeDocument, EnvelopeField, Recipient
from bot.envelopes.presenters import EnvelopeAggregate
from bot.errors import NotFound
from bot.ids import looks_like
from bot.signing import tokens


def _get_row(session: Session, ctx: AuthContext, envelope_id: str, lock: bool) -> Envelope:
    return get_owned(session, Envelope, "envelope", ctx, envelope_id, lock=lock)


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


def load(
    session: Session, ctx: AuthContext, envelope_id: str, *, lock: bool = False
) -> EnvelopeAggregate:
    """The aggregate for a change; ``lock`` holds the envelope row until commit (every change
    that moves the envelope or appends to its audit log takes it)."""
    return load_many(session, [_get_row(session, ctx, envelope_id, lock)])[0]


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
