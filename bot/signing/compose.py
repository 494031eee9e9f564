"""The signed document before its seal: the originals, a signature page, a certificate page.

``compose(spec)`` is a pure function of its spec (same spec, same bytes): the documents are
concatenated in order, then come the signature page(s) — one block per SIGNER whose signature
is not already stamped at placed fields — and the certificate of completion. The result is a
plain, unsigned PDF written whole by pypdf (no encryption, no incremental update, no signature
fields: widgets of signature fields in uploads are dropped, as they could never be valid after
re-writing), ready for ``seal.py`` to add the PAdES seal as its one incremental update.

Uploaded pages are copied, never re-rendered: their content streams stay byte for byte; in test
mode a TEST mark is laid over them (:func:`mark_pages`). Outlines (bookmarks) and form
catalogs of the uploads are not carried over: a page-level copy keeps a sealed document free of
interactive form fields.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from io import BytesIO
from typing import Any

from pypdf import PageObject, PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    IndirectObject,
    NameObject,
)
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, PageBreak

from bot.signing import drawing
from bot.signing.compose_pages import certificate_story, signature_story

MARGIN = drawing.PAGE_MARGIN
_MARK_NAME = "/SignbotTestMark"
_SUBSET_TAG = re.compile(r"^/[A-Z]{6}\+")


@dataclass(frozen=True)
class SourceDocument:
    name: str
    """The document's name as uploaded (shown on the certificate page)."""
    pdf: bytes
    sha256: str
    """Hex SHA-256 of the original upload (the PDF made from it for an image upload)."""


@dataclass(frozen=True)
class SignatureMark:
    """One recipient who signed or approved, with what the signature page needs."""

    recipient_id: str
    name: str
    email: str
    role: str
    """``SIGNER`` (gets a block on the signature page) or ``APPROVER`` (certificate only)."""
    signed_at: datetime
    """When they signed or approved (aware, UTC)."""
    drawn_png: bytes | None
    """A SIGNER's drawing from the browser canvas: PNG, transparent background, any size."""
    typed: str | None
    """A SIGNER's typed signature, drawn in a handwriting-like slant; unused with a drawing."""
    ip: str | None
    authentication: str | None
    """``None``/``NONE`` (the email link) or ``EMAIL_OTP``."""


@dataclass(frozen=True)
class Party:
    """Every recipient, as listed on the certificate page (VIEWER, CARBON_COPY included)."""

    name: str
    email: str
    role: str
    status: str
    recipient_id: str | None = None
    """Matches the party to its :class:`SignatureMark` (time, IP, authentication); when
    absent the mark is found by email and role."""


@dataclass(frozen=True)
class Composition:
    envelope_id: str
    subject: str
    account_name: str
    """The sender's account, shown as "Sent by" on the certificate."""
    test_mode: bool
    """Sandbox envelope: every page gets a visible "TEST — not legally binding" mark."""
    documents: tuple[SourceDocument, ...]
    signatures: tuple[SignatureMark, ...]
    parties: tuple[Party, ...]
    completed_at: datetime
    placed: frozenset[str] = field(default_factory=frozenset)
    """Recipient ids whose signature is already stamped at placed fields: no block for them
    on the signature page (they still appear on the certificate)."""


@dataclass(frozen=True)
class ComposedDocument:
    name: str
    pages: int
    sha256_before: str
    """The source's ``sha256``, as given."""
    sha256_after: str
    """Hex SHA-256 of this document's pages as they stand in the result, written alone: a PDF
    of only its pages — signature widgets dropped, stamped fields and the TEST mark applied —
    written by pypdf with nothing else (no appended pages, no seal). Deterministic for the same
    input and library versions, so it can be re-derived; it is what the audit trail reports as
    the document's "after" hash. It differs from ``sha256_before`` even when no page changed,
    because the file is re-written."""


@dataclass(frozen=True)
class Composed:
    pdf: bytes
    """The unsigned PDF to seal."""
    documents: tuple[ComposedDocument, ...]
    pages: int
    """Total pages: the documents', then the signature page(s), then the certificate."""


def compose(spec: Composition) -> Composed:
    """The completed envelope as one PDF, ready to seal (see the module docstring)."""
    if not spec.documents:
        raise ValueError("an envelope has at least one document")
    drawing.register_fonts()
    out = PdfWriter()
    composed: list[ComposedDocument] = []
    for document in spec.documents:
        alone = _copy_pages(document)
        if spec.test_mode:
            mark_pages(alone, alone.pages)
        buffer = BytesIO()
        alone.write(buffer)
        composed.append(
            ComposedDocument(
                name=document.name,
                pages=len(alone.pages),
                sha256_before=document.sha256,
                sha256_after=hashlib.sha256(buffer.getvalue()).hexdigest(),
            )
        )
        for page in alone.pages:
            out.add_page(page)
    offset = len(out.pages)
    for page in PdfReader(BytesIO(_appended_pages(spec, tuple(composed), offset))).pages:
        _retag_fonts(page, "SBS")
        out.add_page(page)
    out.add_metadata(drawing.metadata(spec.subject or "Signed document", spec.completed_at))
    result = BytesIO()
    out.write(result)
    return Composed(pdf=result.getvalue(), documents=tuple(composed), pages=len(out.pages))


def _copy_pages(document: SourceDocument) -> PdfWriter:
    """The document's pages in a writer of their own, signature-field widgets dropped."""
    reader = PdfReader(BytesIO(document.pdf))
    if reader.is_encrypted:
        raise ValueError(f"document {document.name!r} is encrypted")
    alone = PdfWriter()
    for page in reader.pages:
        _drop_signature_widgets(page)
        alone.add_page(page)
    return alone


def _retag_fonts(page: PageObject, prefix: str) -> None:
    """Give the font subsets reportlab embedded on ``page`` tags of our own.

    reportlab tags every subset ``AAAAAA+``, ``AAAAAB+``… in each PDF it makes, so our pages,
    the TEST mark and an upload made with reportlab would carry different subsets under one
    name; subset tags should tell subsets apart within a file (ISO 32000 9.6.4). ``prefix``
    (three capitals) replaces the first half of the tag.
    """
    fonts = page.get("/Resources", {}).get_object().get("/Font", {}).get_object()
    for reference in fonts.values():
        font = reference.get_object()
        descriptor = font.get("/FontDescriptor")
        for holder, key in ((font, "/BaseFont"), (descriptor, "/FontName")):
            if holder is None:
                continue
            holder = holder.get_object()
            name = str(holder.get(key, ""))
            if _SUBSET_TAG.match(name):
                holder[NameObject(key)] = NameObject(f"/{prefix}{name[4:]}")


def _drop_signature_widgets(page: PageObject) -> None:
    """Remove widgets of signature fields (filled or empty) from ``page`` (reader side, before
    the copy, so their values are never copied): an old signature cannot survive re-writing and
    an empty one is not ours to fill."""
    annots = page.get("/Annots")
    if annots is None:
        return
    listed = annots.get_object()
    kept = [a for a in listed if not _is_signature_widget(a.get_object())]
    if len(kept) != len(listed):
        page[NameObject("/Annots")] = ArrayObject(kept)


def _is_signature_widget(annot: object) -> bool:
    node = annot
    for _ in range(32):  # field trees are shallow; a cycle must not hang us
        if not hasattr(node, "get"):
            return False
        if node.get("/FT") == "/Sig":
            return True
        parent = node.get("/Parent")
        if parent is None:
            return False
        node = parent.get_object()
    return False


def _appended_pages(spec: Composition, composed: Sequence[ComposedDocument], offset: int) -> bytes:
    """The signature page(s) and the certificate page, numbered after the ``offset`` pages of
    the documents ("Page 101 of 102"), so the numbers hold in the combined PDF."""
    buffer = BytesIO()
    template = drawing.a4_template(buffer, "Signatures and certificate of completion")
    content_width = template.width - 12  # the frame's own 6 pt padding on each side
    story: list[Flowable] = []
    signers = [
        mark
        for mark in spec.signatures
        if mark.role.upper() == "SIGNER" and mark.recipient_id not in spec.placed
    ]
    if signers:
        story += signature_story(spec, signers, content_width)
        story.append(PageBreak())
    story += certificate_story(spec, composed, content_width)

    left = f"Envelope {spec.envelope_id}"
    if drawing.clean(spec.subject):
        left += f" · {drawing.clean(spec.subject)}"

    def decorate(canvas: Canvas, number: int, total: int) -> None:
        if spec.test_mode:
            drawing.draw_test_mark(canvas, *A4)
        right = f"Page {offset + number} of {offset + total}"
        drawing.footer(canvas, A4[0], left, right, test=spec.test_mode, margin=MARGIN)

    template.build(story, canvasmaker=drawing.deferred_canvas(decorate))
    return buffer.getvalue()


# --- the TEST mark over uploaded pages --------------------------------------------------------


def mark_pages(writer: PdfWriter, pages: Iterable[PageObject]) -> None:
    """Put the TEST mark over ``pages`` (already in ``writer``) without touching their content.

    ``PageObject.merge_page`` would decode, re-parse and re-write every content stream (about
    5 ms a page, and the file doubles as the result is left uncompressed). Instead the mark is
    one Form XObject per displayed page size, and each page's ``/Contents`` becomes the array
    ``[q, <original streams…>, Q + draw mark]``: the original streams stay byte for byte, the
    ``q``/``Q`` pair shields the mark from whatever graphics state the page leaves behind.

    The mark is drawn for the page as displayed: on the crop box, turned with ``/Rotate``, so
    on a page rotated 90° it still reads from bottom left to top right.
    """
    forms: dict[tuple[float, float], IndirectObject] = {}
    opener = _add_stream(writer, b"q\n")
    closers: dict[tuple[float, float, int, float, float, float, float], IndirectObject] = {}
    for page in pages:
        box = page.cropbox
        x0, y0, w, h = float(box.left), float(box.bottom), float(box.width), float(box.height)
        rotation = page.rotation % 360 if page.rotation % 90 == 0 else 0
        display = (
            (round(h, 2), round(w, 2)) if rotation in (90, 270) else (round(w, 2), round(h, 2))
        )
        if display not in forms:
            forms[display] = _mark_form(writer, *display)
        key = (*display, rotation, x0, y0, w, h)
        if key not in closers:
            matrix = _display_to_user(rotation, x0, y0, w, h)
            ops = " ".join(_num(v) for v in matrix)
            closers[key] = _add_stream(writer, f"\nQ\nq {ops} cm {_MARK_NAME} Do Q\n".encode())
        _add_to_page(page, forms[display], opener, closers[key])


def _display_to_user(
    rotation: int, x0: float, y0: float, w: float, h: float
) -> tuple[float, float, float, float, float, float]:
    """The ``cm`` matrix from display space (origin bottom left of the page as shown) to the
    page's user space, for a crop box at (x0, y0) of w by h turned clockwise by ``rotation``."""
    if rotation == 90:
        return (0, 1, -1, 0, x0 + w, y0)
    if rotation == 180:
        return (-1, 0, 0, -1, x0 + w, y0 + h)
    if rotation == 270:
        return (0, -1, 1, 0, x0, y0 + h)
    return (1, 0, 0, 1, x0, y0)


def _num(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") or "0"


def _add_stream(writer: PdfWriter, data: bytes) -> IndirectObject:
    stream = DecodedStreamObject()
    stream.set_data(data)
    # pypdf offers no public call to add a new indirect object; streams must be indirect.
    return writer._add_object(stream)


@functools.lru_cache(maxsize=32)
def _mark_page_pdf(page_width: float, page_height: float) -> bytes:
    drawing.register_fonts()
    buffer = BytesIO()
    canvas = Canvas(
        buffer,
        pagesize=(page_width, page_height),
        invariant=True,
        initialFontName=drawing.FONT_BOLD,
    )
    drawing.draw_test_mark(canvas, page_width, page_height)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _mark_form(writer: PdfWriter, page_width: float, page_height: float) -> IndirectObject:
    """The TEST mark for a displayed page size, as a Form XObject in ``writer``."""
    source = PdfReader(BytesIO(_mark_page_pdf(page_width, page_height))).pages[0]
    _retag_fonts(source, "SBM")
    form = DecodedStreamObject()
    form.set_data(source.get_contents().get_data())  # type: ignore[union-attr]
    form[NameObject("/Type")] = NameObject("/XObject")
    form[NameObject("/Subtype")] = NameObject("/Form")
    form[NameObject("/BBox")] = ArrayObject(
        [FloatObject(0), FloatObject(0), FloatObject(page_width), FloatObject(page_height)]
    )
    form[NameObject("/Resources")] = source["/Resources"].get_object().clone(writer)
    return writer._add_object(form.flate_encode())


def _add_to_page(
    page: PageObject, form: IndirectObject, opener: IndirectObject, closer: IndirectObject
) -> None:
    resources = page.get("/Resources")
    if resources is None:
        page[NameObject("/Resources")] = resources = DictionaryObject()
    resources = resources.get_object()
    xobjects = resources.get("/XObject")
    if xobjects is None:
        resources[NameObject("/XObject")] = xobjects = DictionaryObject()
    # The name is ours alone; when /Resources is shared by several pages the extra entry is
    # harmless to the pages that do not draw it.
    xobjects.get_object()[NameObject(_MARK_NAME)] = form
    contents = page.get("/Contents")
    streams: list[Any] = []
    if contents is not None:
        resolved = contents.get_object()
        streams = list(resolved) if isinstance(resolved, ArrayObject) else [contents]
    page[NameObject("/Contents")] = ArrayObject([opener, *streams, closer])
