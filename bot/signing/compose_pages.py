"""What ``compose`` appends after the documents: the signature blocks and the certificate of
completion, as platypus stories (pagination, when signers or parties are many, comes free).

Every user-supplied value (names, emails, subject, document names, typed signatures) goes
through ``drawing.fit`` — bounded to a few lines, cut with an ellipsis — before it is drawn or
escaped into Paragraph markup, so no value can overflow a box or grow a cell past a page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from io import BytesIO
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from PIL import Image
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Paragraph, Spacer

from bot.signing import drawing
from bot.signing.drawing import FONT, FONT_BOLD, MUTED, RULE

if TYPE_CHECKING:
    from bot.signing.compose import ComposedDocument, Composition, Party, SignatureMark

BLOCK_HEIGHT = 144.0
GAP = 12.0
PAD = 12.0
SIGNATURE_HEIGHT = 60.0
"""Height of the area above the signature line where the drawing or typed text goes."""
_SLANT = math.tan(math.radians(14))
"""Shear of a typed signature: an oblique, handwriting-like lean from the upright face."""
_PIXELS_PER_POINT = 3
"""A drawing is kept at most at ~216 dpi of its printed size: sharp, and no 4000 px PNGs."""


# --- signature page ---------------------------------------------------------------------------


def signature_story(
    spec: Composition, signers: Sequence[SignatureMark], content_width: float
) -> list[Flowable]:
    """Title, subject and one bordered block per signer, two per row."""
    styles = drawing.styles()
    story: list[Flowable] = [Paragraph("Signatures", styles["title"])]
    subject = _lines(spec.subject, FONT, 10, content_width, 2)
    if subject:
        story.append(Paragraph(subject, styles["subtitle"]))
    count = f"{len(signers)} signature" + ("" if len(signers) == 1 else "s")
    story.append(
        Paragraph(
            f"Envelope {escape(drawing.clean(spec.envelope_id))} · completed "
            f"{drawing.utc_text(spec.completed_at)} · {count}",
            styles["label"],
        )
    )
    story.append(Spacer(1, 14))
    block_width = (content_width - GAP) / 2
    for start in range(0, len(signers), 2):
        story.append(_BlockRow(signers[start : start + 2], block_width, spec.envelope_id))
    return story


class _BlockRow(Flowable):
    """Up to two signature blocks side by side (a flowable, so rows paginate)."""

    def __init__(self, marks: Sequence[SignatureMark], block_width: float, envelope_id: str):
        super().__init__()
        self.marks = marks
        self.block_width = block_width
        self.envelope_id = envelope_id

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        return avail_width, BLOCK_HEIGHT + GAP

    def draw(self) -> None:
        for index, mark in enumerate(self.marks):
            x = index * (self.block_width + GAP)
            _draw_block(self.canv, x, GAP, self.block_width, mark, self.envelope_id)


def _draw_block(
    canvas: Canvas, x: float, y: float, block_width: float, mark: SignatureMark, envelope_id: str
) -> None:
    canvas.saveState()
    canvas.setStrokeColor(RULE)
    canvas.setLineWidth(0.75)
    canvas.roundRect(x, y, block_width, BLOCK_HEIGHT, 4, stroke=1, fill=0)
    inner_x, inner_width = x + PAD, block_width - 2 * PAD
    line_y = y + BLOCK_HEIGHT - PAD - SIGNATURE_HEIGHT
    if mark.drawn_png:
        _draw_drawing(canvas, mark, inner_x, line_y + 3, inner_width, SIGNATURE_HEIGHT - 3)
    elif mark.typed and drawing.clean(mark.typed):
        _draw_typed(canvas, mark.typed, inner_x, line_y + 6, inner_width, SIGNATURE_HEIGHT - 6)
    else:
        canvas.setFont(FONT, 9)
        canvas.setFillColor(MUTED)
        canvas.drawString(inner_x, line_y + 8, "Signed electronically")
    canvas.setStrokeColor(MUTED)
    canvas.setLineWidth(0.5)
    canvas.line(inner_x, line_y, inner_x + inner_width, line_y)

    cursor = line_y - 14
    canvas.setFillColor(drawing.INK)
    canvas.setFont(FONT_BOLD, 10)
    for line in drawing.fit(mark.name, FONT_BOLD, 10, inner_width, 2):
        canvas.drawString(inner_x, cursor, line)
        cursor -= 12.5
    rows = (
        (FONT, 8.5, MUTED, mark.email, 11.0),
        (FONT, 8, drawing.INK, f"Signed at {drawing.utc_text(mark.signed_at)}", 10.5),
        (FONT, 7, MUTED, f"Envelope {envelope_id}", 10.0),
    )
    for font, size, color, text, leading in rows:
        canvas.setFont(font, size)
        canvas.setFillColor(color)
        canvas.drawString(inner_x, cursor, drawing.fit(text, font, size, inner_width)[0])
        cursor -= leading
    canvas.restoreState()


def _draw_drawing(
    canvas: Canvas, mark: SignatureMark, x: float, y: float, box_width: float, box_height: float
) -> None:
    """The drawing scaled into the box, aspect ratio kept, sitting on the signature line."""
    try:
        with Image.open(BytesIO(mark.drawn_png or b"")) as source:
            source.load()
            image = source.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"signature of {mark.recipient_id}: unreadable PNG") from exc
    ink = image.getchannel("A").getbbox()
    if ink:  # the canvas' empty margins would only shrink the signature
        image = image.crop(ink)
    limit = (int(box_width * _PIXELS_PER_POINT), int(box_height * _PIXELS_PER_POINT))
    if image.width > limit[0] or image.height > limit[1]:
        image.thumbnail(limit, Image.Resampling.LANCZOS)
    scale = min(box_width / image.width, box_height / image.height)
    canvas.drawImage(
        ImageReader(image),
        x,
        y,
        width=image.width * scale,
        height=image.height * scale,
        mask="auto",
    )


def _draw_typed(
    canvas: Canvas, typed: str, x: float, y: float, box_width: float, box_height: float
) -> None:
    """The typed signature, slanted, as large as fits (down to 11 pt, then cut)."""
    size = min(28.0, box_height * 0.7)
    natural = drawing.width(drawing.clean(typed), FONT, size) + _SLANT * size
    if natural > box_width:
        size = max(11.0, size * box_width / natural)
    text = drawing.fit(typed, FONT, size, box_width - _SLANT * size)[0]
    canvas.saveState()
    canvas.setFillColor(drawing.SIGNATURE_INK)
    canvas.setFont(FONT, size)
    canvas.transform(1, 0, _SLANT, 1, x, y)
    canvas.drawString(0, 0, text)
    canvas.restoreState()


# --- certificate page -------------------------------------------------------------------------


def certificate_story(
    spec: Composition, composed: Sequence[ComposedDocument], content_width: float
) -> list[Flowable]:
    """Who sent what, which documents (with their original hashes), who did what, when."""
    styles = drawing.styles()
    story: list[Flowable] = [Paragraph("Certificate of Completion", styles["title"])]
    subtitle = _lines(spec.subject, FONT, 10, content_width, 2)
    story.append(Paragraph(subtitle or "(no subject)", styles["subtitle"]))
    story.append(Spacer(1, 8))
    if spec.test_mode:
        story.append(
            Paragraph(
                "TEST ENVIRONMENT (sandbox) — this envelope is not legally binding.",
                styles["banner"],
            )
        )
        story.append(Spacer(1, 6))
    pages = sum(d.pages for d in composed)
    half = content_width / 2
    label = 62.0
    summary = [
        (
            "Envelope ID",
            _lines(spec.envelope_id, FONT, 8.5, half - label - 8, 2),
            "Status",
            "Completed",
        ),
        (
            "Sent by",
            _lines(spec.account_name, FONT, 8.5, half - label - 8, 2),
            "Completed",
            drawing.utc_text(spec.completed_at),
        ),
        (
            "Documents",
            f"{len(composed)} ({pages} page{'s' if pages != 1 else ''} in all)",
            "Environment",
            "Test (sandbox)" if spec.test_mode else "Live",
        ),
    ]
    rows = [
        [
            Paragraph(a, styles["label"]),
            Paragraph(b, styles["body"]),
            Paragraph(c, styles["label"]),
            Paragraph(d, styles["body"]),
        ]
        for a, b, c, d in summary
    ]
    story.append(drawing.table(rows, [label, half - label, label, half - label], header=False))

    story.append(Paragraph("Documents", styles["h2"]))
    hash_width = drawing.width("0" * 64, FONT, 6.5) + 10
    name_width = content_width - 22 - 40 - hash_width
    documents = [
        [
            drawing.head("#"),
            drawing.head("Name"),
            drawing.head("Pages"),
            drawing.head("SHA-256 of the original"),
        ]
    ]
    for index, (source, result) in enumerate(zip(spec.documents, composed, strict=True), 1):
        documents.append(
            [
                Paragraph(str(index), styles["cell"]),
                Paragraph(_lines(source.name, FONT, 7.5, name_width - 8, 2), styles["cell"]),
                Paragraph(str(result.pages), styles["cell"]),
                Paragraph(_lines(source.sha256, FONT, 6.5, hash_width - 8, 2), styles["small"]),
            ]
        )
    story.append(drawing.table(documents, [22, name_width, 40, hash_width]))

    story.append(Paragraph("Parties", styles["h2"]))
    widths = [content_width - 356, 58, 52, 90, 80, 76]
    heads = ("Name / email", "Role", "Status", "Time (UTC)", "IP address", "Authentication")
    parties = [[drawing.head(h) for h in heads]]
    for party in spec.parties:
        parties.append(_party_row(party, _mark_for(party, spec.signatures), widths))
    story.append(drawing.table(parties, widths))

    story.append(Paragraph("About this certificate", styles["h2"]))
    closing = (
        "This document is sealed with this deployment's certificate as a PAdES electronic "
        "seal: any change made after sealing invalidates the seal, which PDF readers and "
        "independent validators can check. The envelope's audit trail holds the full, "
        "hash-chained event log (every event with its UTC time, IP address and user agent, "
        "authentication and consent)."
    )
    if spec.test_mode:
        closing += " This envelope was created in the test environment: it is not legally binding."
    story.append(Paragraph(closing, styles["body"]))
    return story


def _party_row(
    party: Party, mark: SignatureMark | None, widths: Sequence[float]
) -> list[Paragraph]:
    styles = drawing.styles()
    name = _lines(party.name, FONT_BOLD, 7.5, widths[0] - 8, 2)
    email = _lines(party.email, FONT, 7.5, widths[0] - 8, 2)
    when = ip = verified = "—"
    if mark is not None:
        verb = "Approved" if mark.role.upper() == "APPROVER" else "Signed"
        when = f"{verb}<br/>{drawing.utc_text(mark.signed_at).removesuffix(' UTC')}"
        ip = _lines(mark.ip, FONT, 7.5, widths[4] - 8, 3) if mark.ip else "—"
        verified = _lines(drawing.auth_label(mark.authentication), FONT, 7.5, widths[5] - 8, 2)
    return [
        Paragraph(f"<b>{name}</b><br/><font color='#6B7280'>{email}</font>", styles["cell"]),
        Paragraph(
            _lines(drawing.humanize(party.role), FONT, 7.5, widths[1] - 8, 2), styles["cell"]
        ),
        Paragraph(
            _lines(drawing.humanize(party.status), FONT, 7.5, widths[2] - 8, 2), styles["cell"]
        ),
        Paragraph(when, styles["cell"]),
        Paragraph(ip, styles["cell"]),
        Paragraph(verified, styles["cell"]),
    ]


def _mark_for(party: Party, marks: Sequence[SignatureMark]) -> SignatureMark | None:
    """The party's signature or approval: by recipient id, else by email and role."""
    if party.recipient_id is not None:
        return next((m for m in marks if m.recipient_id == party.recipient_id), None)
    same = [
        m
        for m in marks
        if m.email.casefold() == party.email.casefold() and m.role.upper() == party.role.upper()
    ]
    return next((m for m in same if m.name == party.name), same[0] if same else None)


def _lines(text: str | None, font: str, size: float, max_width: float, max_lines: int) -> str:
    """User text, bounded by ``drawing.fit`` and escaped, as Paragraph markup."""
    if not drawing.clean(text):
        return ""
    lines = drawing.fit(text or "", font, size, max_width, max_lines)
    return "<br/>".join(escape(line) for line in lines)
