"""Where each field really goes: anchors found in the documents, or the given coordinates.

Resolved once, when the envelope is created or changed (not at every page view), by reading
each document's PDF once whatever the number of fields. An anchor that is not found keeps the
field at its coordinates — never dropped — and the envelope says so (``anchorFound: false``
on the field and a line in ``warnings``). PDF work runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import update
from sqlmodel import Session, col, select

from bot.accounts.context import AuthContext
from bot.db import Database
from bot.documents import anchors
from bot.documents.models import Document
from bot.documents.storage import Storage
from bot.envelopes.models import Envelope, EnvelopeDocument, EnvelopeField
from bot.ids import looks_like


class FieldLike(Protocol):
    document_index: int
    page_number: int
    x: float
    y: float
    width: float
    height: float
    anchor_text: str | None
    anchor_placement: str
    anchor_index: int


@dataclass(frozen=True)
class Placement:
    page: int
    x: float
    y: float
    width: float
    height: float
    page_width: float
    page_height: float
    anchor_found: bool | None

    def columns(self) -> dict[str, Any]:
        return {
            "placed_page": self.page,
            "placed_x": self.x,
            "placed_y": self.y,
            "placed_width": self.width,
            "placed_height": self.height,
            "page_width": self.page_width,
            "page_height": self.page_height,
            "anchor_found": self.anchor_found,
        }


def _resolve(pdf: bytes, fields: Sequence[FieldLike]) -> list[Placement | None]:
    """One document's fields, its text read once; a field whose page does not exist is None
    and left to the validation that answers 400."""
    sizes = anchors.page_sizes(pdf)
    valid = [i for i, f in enumerate(fields) if 1 <= f.page_number <= len(sizes)]
    specs = [
        anchors.FieldSpec(
            page_number=fields[i].page_number,
            x=fields[i].x,
            y=fields[i].y,
            width=fields[i].width,
            height=fields[i].height,
            anchor_text=fields[i].anchor_text or None,
            anchor_placement=fields[i].anchor_placement,
            anchor_index=fields[i].anchor_index,
        )
        for i in valid
    ]
    out: list[Placement | None] = [None] * len(fields)
    for i, resolved in zip(valid, anchors.resolve(pdf, specs) if specs else [], strict=True):
        box = resolved.box
        width, height = sizes[box.page - 1]
        out[i] = Placement(
            box.page, box.x, box.y, box.width, box.height, width, height, resolved.anchor_found
        )
    return out


async def place(
    storage: Storage, pdf_keys: Sequence[str], fields: Sequence[FieldLike]
) -> list[Placement | None]:
    """Placements for ``fields`` (in order) over the documents stored at ``pdf_keys``."""
    by_document: dict[int, list[int]] = defaultdict(list)
    for i, field in enumerate(fields):
        if 0 <= field.document_index < len(pdf_keys):
            by_document[field.document_index].append(i)
    out: list[Placement | None] = [None] * len(fields)
    for index, positions in by_document.items():
        pdf = await storage.read_bytes(pdf_keys[index])
        chosen = [fields[i] for i in positions]
        for i, placed in zip(
            positions, await asyncio.to_thread(_resolve, pdf, chosen), strict=True
        ):
            out[i] = placed
    return out


def _pdf_keys(session: Session, envelope_id: str) -> list[str]:
    return list(
        session.exec(
            select(Document.pdf_storage_key)
            .join(EnvelopeDocument, col(EnvelopeDocument.document_id) == col(Document.id))
            .where(EnvelopeDocument.envelope_id == envelope_id)
            .order_by(col(EnvelopeDocument.position))
        )
    )


async def refresh(
    db: Database, storage: Storage, ctx: AuthContext, envelope_id: str, *, only_missing: bool
) -> None:
    """(Re)place an envelope's fields after a change (``only_missing``: just the unplaced).
    An id that cannot be an envelope's is left to the caller's 404."""
    if not looks_like("envelope", envelope_id):
        return

    def read(session: Session) -> tuple[list[str], list[EnvelopeField]]:
        envelope = session.get(Envelope, envelope_id)
        owned = envelope is not None and (envelope.account_id, envelope.environment) == (
            ctx.account_id,
            ctx.environment,
        )
        if not owned:
            return [], []  # another tenant's (or nobody's): the caller answers 404
        query = select(EnvelopeField).where(EnvelopeField.envelope_id == envelope_id)
        if only_missing:
            query = query.where(col(EnvelopeField.placed_page).is_(None))
        fields = list(session.exec(query.order_by(col(EnvelopeField.position))))
        session.expunge_all()
        return _pdf_keys(session, envelope_id), fields

    keys, fields = await db.run(read)
    if not fields:
        return
    placements = await place(storage, keys, fields)

    def write(session: Session) -> None:
        for field, placed in zip(fields, placements, strict=True):
            if placed is not None:
                session.exec(  # type: ignore[call-overload]
                    update(EnvelopeField)
                    .where(col(EnvelopeField.id) == field.id)
                    .values(**placed.columns())
                    .execution_options(synchronize_session=False)
                )

    await db.run(write)


def unplace(session: Session, envelope_id: str) -> None:
    """Forget the envelope's placements (they may describe the documents before a change);
    ``send`` places unplaced fields again."""
    session.exec(  # type: ignore[call-overload]
        update(EnvelopeField)
        .where(col(EnvelopeField.envelope_id) == envelope_id)
        .values(placed_page=None, placed_x=None, placed_y=None, placed_width=None)
        .values(placed_height=None, anchor_found=None)
        .execution_options(synchronize_session=False)
    )


def pdf_keys_for(session: Session, account_id: str, environment: str, ids: list[str]) -> list[str]:
    """The tenant's documents' PDF keys, in the order given; unknown ids are skipped (the
    create validation answers 400 for them)."""
    rows = {
        d.id: d.pdf_storage_key
        for d in session.exec(
            select(Document).where(
                col(Document.id).in_(ids),
                Document.account_id == account_id,
                Document.environment == environment,
            )
        )
    }
    return [rows[i] for i in ids if i in rows]
