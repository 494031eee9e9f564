"""What the seal job stamps on each document: every signed recipient's fields, and their
initials at the foot of each page they have no field on (``initialsOnEveryPage``).

Pure: it turns field rows, values and signatures into :class:`bot.signing.stamp.Stamp`
records; ``bot.signing.stamp`` draws them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.documents.anchors import Box
from bot.signing.stamp import Stamp

INITIALS_BOX = (60.0, 24.0)
"""Width and height of an initials stamp at the foot of a page, in points."""
MARGIN = 28.0


def placed_signers(fields: Sequence[Any]) -> frozenset[str]:
    """Recipients whose signature sits in a SIGNATURE field: no block on the appended page."""
    return frozenset(f.recipient_id for f in fields if f.field_type == "SIGNATURE")


def _box(field: Any) -> Box:
    return Box(
        field.placed_page or field.page_number,
        field.placed_x if field.placed_x is not None else field.x,
        field.placed_y if field.placed_y is not None else field.y,
        field.placed_width or field.width,
        field.placed_height or field.height,
    )


def stamps_for(snap: Any, document_index: int, sizes: Sequence[tuple[float, float]]) -> list[Stamp]:
    """Every stamp of one document (``snap`` is the finalize job's snapshot)."""
    signed = {r.id for r in snap.recipients if r.status == "SIGNED"}
    out: list[Stamp] = []
    for field in snap.fields:
        if field.recipient_id not in signed or field.document_index != document_index:
            continue
        signature = snap.signatures.get(field.recipient_id)
        box = _box(field)
        kind = field.field_type
        if kind == "SIGNATURE" and signature is not None:
            out.append(
                Stamp(
                    box.page, box, "signature", text=signature.typed, image_png=signature.image_png
                )
            )
        elif kind == "INITIALS" and signature is not None and signature.initials:
            out.append(Stamp(box.page, box, "initials", text=signature.initials))
        elif kind == "CHECKBOX":
            out.append(
                Stamp(box.page, box, "checkbox", checked=snap.values.get(field.id) == "true")
            )
        elif snap.values.get(field.id):
            out.append(Stamp(box.page, box, "text", text=snap.values[field.id]))
    if snap.envelope.initials_on_every_page:
        out += _initials_everywhere(snap, document_index, sizes, signed)
    return out


def _initials_everywhere(
    snap: Any, document_index: int, sizes: Sequence[tuple[float, float]], signed: set[str]
) -> list[Stamp]:
    """Each signer's initials at the foot of every page they have no field on, side by side
    from the right margin in recipient order so several signers never overlap."""
    out: list[Stamp] = []
    width, height = INITIALS_BOX
    signers = [r for r in snap.recipients if r.id in signed and r.role == "SIGNER"]
    for slot, recipient in enumerate(signers):
        signature = snap.signatures.get(recipient.id)
        if signature is None or not signature.initials:
            continue
        has_field = {
            (f.placed_page or f.page_number)
            for f in snap.fields
            if f.recipient_id == recipient.id and f.document_index == document_index
        }
        for page, (page_width, page_height) in enumerate(sizes, start=1):
            if page in has_field:
                continue
            x = page_width - MARGIN - (slot + 1) * (width + 6)
            box = Box(page, max(x, MARGIN), page_height - MARGIN - height, width, height)
            out.append(Stamp(page, box, "initials", text=signature.initials))
    return out
