"""Filled fields drawn into the document: signatures, initials, text values, check marks.

``stamp(pdf, stamps)`` is pure (bytes in, bytes out). Each stamp's :class:`Box` is in display
space — points from the top-left corner of the page as a viewer shows it (crop box ∩ media box,
turned by ``/Rotate``; see ``bot.documents.anchors``) — the space the signer page and the field
resolver use, so a field lands where the signer saw it on any page.

How, and why so:

- All stamps of one page are drawn by reportlab on one overlay page of the *displayed* size,
  which becomes a Form XObject. The page's ``/Contents`` becomes ``[q, <original streams…>,
  Q + "<display-to-user matrix> cm /Form Do"]``: the original streams are kept byte for byte
  (no decode and re-encode as ``merge_page`` would do), and the ``q``/``Q`` pair shields the
  overlay from whatever graphics state the page leaves behind. The matrix undoes ``/Rotate``
  and the crop box's origin, so the overlay stands upright at the right place.
- Pages without a drawable stamp are not touched; the rest of the file (forms, outlines,
  metadata, annotations) is cloned as it is.
- Text is real, extractable text in the bundled DejaVu Sans, embedded as a subset whose tag
  is derived from its bytes, so successive stamping rounds never reuse a subset's name.
- User text is never markup: ``drawing.clean`` drops control and bidi-override characters
  and collapses whitespace (newlines included), ``drawString`` draws it literally, and it is
  cut to what the box could show before any measuring, so a megabyte of text costs nothing.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO

from PIL import Image
from pypdf import PageObject, PdfReader, PdfWriter
from pypdf.errors import PdfReadError
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    IndirectObject,
    NameObject,
)
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from bot.documents.anchors import Box, clamp
from bot.signing import drawing
from bot.signing.drawing import FONT

KINDS = ("signature", "initials", "text", "checkbox")
MIN_SIZE = 6.0
"""Smallest text size we shrink to; below it text is cut with an ellipsis instead."""
MAX_TEXT_SIZE = 14.0
"""A text value never grows beyond this, however tall its box."""
MAX_SIGNATURE_SIZE = 36.0
LEADING = 1.15
"""Line pitch of wrapped text, in font sizes."""
_ASCENT, _DESCENT = 0.95, -0.24
"""DejaVu Sans' extent in ems, above and below the baseline, with room for accented capitals
("Ồ", "Ễ") that rise above the font's nominal 0.76 ascent."""
_EM = _ASCENT - _DESCENT
_SLANT = math.tan(math.radians(14))
"""The lean of a typed signature, as on the signature page (``compose_pages``)."""
_PIXELS_PER_POINT = 3
_MAX_PIXELS = 25_000_000
"""A drawing larger than this (5000 x 5000) is refused before it is decoded."""


@dataclass(frozen=True)
class Stamp:
    """One filled field to draw."""

    page: int
    """1-based; must equal ``box.page`` (a mismatch is a caller's bug, so it raises)."""
    box: Box
    """In display space; clamped into the page if it sticks out."""
    kind: str
    """``signature`` | ``initials`` (``image_png`` or, typed, ``text``), ``text`` (the value of
    a TEXT, DROPDOWN or RADIO_GROUP field, or a DATE_SIGNED date), ``checkbox``."""
    text: str | None = None
    checked: bool | None = None
    """A ``checkbox`` stamp draws a check mark when true and nothing otherwise."""
    image_png: bytes | None = None
    """A drawn signature or initials: PNG, transparent background; wins over ``text``."""


@dataclass(frozen=True)
class _Page:
    """A page's visible box in user space and its clockwise rotation (as PDFium reads it)."""

    left: float
    bottom: float
    width: float
    height: float
    rotation: int

    @property
    def displayed(self) -> tuple[float, float]:
        if self.rotation in (90, 270):
            return self.height, self.width
        return self.width, self.height

    def matrix(self) -> tuple[float, ...]:
        """The ``cm`` operands mapping display space (origin bottom left) to user space."""
        x0, y0, w, h = self.left, self.bottom, self.width, self.height
        if self.rotation == 90:
            return (0, 1, -1, 0, x0 + w, y0)
        if self.rotation == 180:
            return (-1, 0, 0, -1, x0 + w, y0 + h)
        if self.rotation == 270:
            return (0, -1, 1, 0, x0, y0 + h)
        return (1, 0, 0, 1, x0, y0)


def stamp(pdf: bytes, stamps: Sequence[Stamp]) -> bytes:
    """``pdf`` with every stamp drawn at its box (see the module docstring).

    Returns ``pdf`` itself when nothing is to be drawn (no stamps, or only unchecked boxes and
    empty values). Raises ``ValueError`` for an unreadable or encrypted PDF, a stamp on a page
    that does not exist, an unknown kind, a signature without image or text, or an unreadable
    PNG."""
    try:
        reader = PdfReader(BytesIO(pdf))
        if reader.is_encrypted:
            raise ValueError("the document is encrypted")
        count = len(reader.pages)
    except PdfReadError as exc:
        raise ValueError(f"not a readable PDF ({exc})") from exc
    by_page: dict[int, list[Stamp]] = defaultdict(list)
    for item in stamps:
        _check(item, count)
        if _visible(item):
            by_page[item.page].append(item)
    if not by_page:
        return pdf
    writer = PdfWriter(clone_from=reader)
    numbers = sorted(by_page)
    geometry = {number: _geometry(writer, number) for number in numbers}
    overlay = PdfReader(BytesIO(_overlay(numbers, by_page, geometry)))
    opener = _stream(writer, b"q\n")
    for number, source in zip(numbers, overlay.pages, strict=True):
        form = _form(writer, source, geometry[number].displayed)
        _attach(writer.pages[number - 1], form, geometry[number], opener, writer)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def _check(item: Stamp, count: int) -> None:
    if item.kind not in KINDS:
        raise ValueError(f"unknown stamp kind {item.kind!r} (one of {', '.join(KINDS)})")
    if item.box.page != item.page:
        raise ValueError(f"stamp on page {item.page} has a box on page {item.box.page}")
    if not 1 <= item.page <= count:
        raise ValueError(f"page {item.page} does not exist (the document has {count} pages)")
    if not (item.box.width > 0 and item.box.height > 0):
        raise ValueError("a stamp's box must have a positive width and height")
    if item.kind in ("signature", "initials") and not (item.image_png or drawing.clean(item.text)):
        raise ValueError(f"a {item.kind} stamp needs image_png or a non-blank text")


def _visible(item: Stamp) -> bool:
    if item.kind == "checkbox":
        return bool(item.checked)
    return bool(item.image_png) or bool(drawing.clean(item.text))


def _geometry(writer: PdfWriter, number: int) -> _Page:
    """Crop box ∩ media box and ``/Rotate``, normalised the way PDFium does (what the signer
    saw on the page image): the rotation truncated to a multiple of 90, modulo 360."""
    page = writer.pages[number - 1]
    media, crop = page.mediabox, page.cropbox
    left = max(min(media[0], media[2]), min(crop[0], crop[2]))
    right = min(max(media[0], media[2]), max(crop[0], crop[2]))
    bottom = max(min(media[1], media[3]), min(crop[1], crop[3]))
    top = min(max(media[1], media[3]), max(crop[1], crop[3]))
    if right <= left or top <= bottom:  # disjoint boxes (a broken file): the media box
        left, right = sorted((float(media[0]), float(media[2])))
        bottom, top = sorted((float(media[1]), float(media[3])))
    rotation = int(float(page.get("/Rotate", 0) or 0) / 90) % 4 * 90
    return _Page(float(left), float(bottom), float(right - left), float(top - bottom), rotation)


# --- drawing ----------------------------------------------------------------------------------


def _overlay(
    numbers: Sequence[int], by_page: dict[int, list[Stamp]], geometry: dict[int, _Page]
) -> bytes:
    """One reportlab page per stamped page, of its displayed size, with its stamps drawn."""
    drawing.register_fonts()
    buffer = BytesIO()
    canvas = Canvas(buffer, invariant=True, initialFontName=FONT)
    for number in numbers:
        size = geometry[number].displayed
        canvas.setPageSize(size)
        for item in by_page[number]:
            box = clamp(item.box, size)
            # reportlab's origin is the bottom left: flip the box
            x, y, w, h = box.x, size[1] - box.bottom, box.width, box.height
            canvas.saveState()
            if item.kind == "checkbox":
                _draw_check(canvas, x, y, w, h)
            elif item.kind == "text":
                _draw_text(canvas, item.text or "", x, y, w, h)
            elif item.image_png:
                _draw_image(canvas, item.image_png, x, y, w, h)
            else:
                _draw_typed(canvas, item.text or "", x, y, w, h)
            canvas.restoreState()
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _pad(w: float, h: float) -> float:
    return min(2.0, w / 10, h / 10)


def _bounded(text: str, w: float, h: float) -> str:
    """``text`` cleaned and cut to what a w x h box could hold at the smallest size (a glyph
    is at least ~0.25 em wide), so hostile lengths cost nothing to measure."""
    cleaned = drawing.clean(text)
    limit = int(w * h / (0.25 * MIN_SIZE * MIN_SIZE * LEADING)) + 8
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "…"


def _lines_for(size: float, inner_h: float) -> int:
    return 0 if inner_h < _EM * size else 1 + int((inner_h - _EM * size) // (LEADING * size))


def _whole(text: str, size: float, inner_w: float, inner_h: float) -> list[str] | None:
    """``text`` wrapped at spaces into the lines the height allows at ``size``, with no word
    cut and nothing dropped, or ``None`` when it does not fit so."""
    lines = _lines_for(size, inner_h)
    if lines < 1 or any(drawing.width(w, FONT, size) > inner_w for w in text.split(" ")):
        return None
    wrapped = drawing.fit(text, FONT, size, inner_w, lines)
    return wrapped if "".join(wrapped).replace(" ", "") == text.replace(" ", "") else None


def _text_layout(text: str, inner_w: float, inner_h: float) -> tuple[float, list[str]]:
    """The largest size up to ``MAX_TEXT_SIZE`` (or what the height allows) at which ``text``
    fits whole, found by bisection; when it fits at no size down to ``MIN_SIZE``, that size
    with the text cut by an ellipsis."""
    high = min(MAX_TEXT_SIZE, inner_h / _EM)
    low = min(MIN_SIZE, high)
    lines = _whole(text, low, inner_w, inner_h)
    if lines is None:
        return low, drawing.fit(text, FONT, low, inner_w, max(1, _lines_for(low, inner_h)))
    size, probe = low, high
    while probe - size > 0.25:
        attempt = _whole(text, probe, inner_w, inner_h)
        if attempt is None:
            high = probe
        else:
            size, lines = probe, attempt
        probe = (size + high) / 2
    return size, lines


def _draw_text(canvas: Canvas, value: str, x: float, y: float, w: float, h: float) -> None:
    """A value sized from the box height, shrunk (and wrapped, in a tall box) to fit the
    width, never below ``MIN_SIZE``; left-aligned, the block centred vertically."""
    pad = _pad(w, h)
    text = _bounded(value, w, h)
    if not text or (h - 2 * pad) / _EM <= 1:
        return
    size, lines = _text_layout(text, w - 2 * pad, h - 2 * pad)
    block = _EM * size + (len(lines) - 1) * LEADING * size
    baseline = y + h / 2 + block / 2 - _ASCENT * size
    canvas.setFillColor(drawing.INK)
    canvas.setFont(FONT, size)
    for line in lines:
        canvas.drawString(x + pad, baseline, line)
        baseline -= LEADING * size


def _draw_typed(canvas: Canvas, value: str, x: float, y: float, w: float, h: float) -> None:
    """A typed signature or initials: slanted like handwriting, as large as the box allows,
    centred; cut with an ellipsis only if it does not fit even at ``MIN_SIZE``."""
    pad = _pad(w, h)
    inner_w, inner_h = w - 2 * pad, h - 2 * pad
    text = _bounded(value, w, h)
    size = min(MAX_SIGNATURE_SIZE, inner_h / _EM)
    if size <= 1:
        return
    lean = _SLANT * _EM  # extra width the shear adds, in ems
    natural = drawing.width(text, FONT, size) + lean * size
    if natural > inner_w:
        # 2 % under the exact fit: rounding must not make ``fit`` cut a name that fits
        size = max(min(MIN_SIZE, size), size * inner_w / natural * 0.98)
        text = drawing.fit(text, FONT, size, max(1.0, inner_w - lean * size))[0]
    text_width = drawing.width(text, FONT, size)
    left = x + (w - text_width - lean * size) / 2 - _SLANT * _DESCENT * size
    baseline = y + h / 2 - (_ASCENT + _DESCENT) / 2 * size
    canvas.setFillColor(drawing.SIGNATURE_INK)
    canvas.setFont(FONT, size)
    canvas.transform(1, 0, _SLANT, 1, left, baseline)
    canvas.drawString(0, 0, text)


def _draw_image(canvas: Canvas, png: bytes, x: float, y: float, w: float, h: float) -> None:
    """A drawing fitted into the box, aspect ratio kept, centred; its empty margins (fully
    transparent) are cropped first so the ink, not the browser canvas, fills the box."""
    try:
        with Image.open(BytesIO(png), formats=("PNG",)) as source:
            if source.width * source.height > _MAX_PIXELS:
                raise ValueError("the signature image is too large")
            source.load()
            image = source.convert("RGBA")
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError("the signature image is not a readable PNG") from exc
    ink = image.getchannel("A").getbbox()
    if not ink:
        raise ValueError("the signature image is blank")
    image = image.crop(ink)
    pad = _pad(w, h)
    inner_w, inner_h = w - 2 * pad, h - 2 * pad
    limit = (max(1, int(inner_w * _PIXELS_PER_POINT)), max(1, int(inner_h * _PIXELS_PER_POINT)))
    if image.width > limit[0] or image.height > limit[1]:
        image.thumbnail(limit, Image.Resampling.LANCZOS)
    scale = min(inner_w / image.width, inner_h / image.height)
    draw_w, draw_h = image.width * scale, image.height * scale
    canvas.drawImage(
        ImageReader(image),
        x + (w - draw_w) / 2,
        y + (h - draw_h) / 2,
        width=draw_w,
        height=draw_h,
        mask="auto",
    )


def _draw_check(canvas: Canvas, x: float, y: float, w: float, h: float) -> None:
    """A check mark in the largest square centred in the box, as a stroked path (exact bounds,
    whatever the font), with an invisible "✓" over it so text extraction reads the value."""
    side = min(w, h)
    left, bottom = x + (w - side) / 2, y + (h - side) / 2
    canvas.setStrokeColor(drawing.INK)
    canvas.setLineWidth(side * 0.12)
    canvas.setLineCap(1)
    canvas.setLineJoin(1)
    path = canvas.beginPath()
    path.moveTo(left + 0.2 * side, bottom + 0.52 * side)
    path.lineTo(left + 0.42 * side, bottom + 0.26 * side)
    path.lineTo(left + 0.8 * side, bottom + 0.78 * side)
    canvas.drawPath(path, stroke=1, fill=0)
    size = side * 0.6
    text = canvas.beginText(left + (side - drawing.width("✓", FONT, size)) / 2, bottom + side * 0.3)
    text.setTextRenderMode(3)  # invisible
    text.setFont(FONT, size)
    text.textOut("✓")
    canvas.drawText(text)


# --- merging ----------------------------------------------------------------------------------


def _form(writer: PdfWriter, page: PageObject, size: tuple[float, float]) -> IndirectObject:
    """An overlay page as a Form XObject in ``writer``; its resources (fonts, images) are
    cloned once for all pages, and the font subsets renamed by content."""
    form = DecodedStreamObject()
    form.set_data(page.get_contents().get_data())  # type: ignore[union-attr]
    form[NameObject("/Type")] = NameObject("/XObject")
    form[NameObject("/Subtype")] = NameObject("/Form")
    form[NameObject("/BBox")] = ArrayObject(
        [FloatObject(0), FloatObject(0)] + [FloatObject(v) for v in size]
    )
    resources = page["/Resources"].get_object().clone(writer)  # type: ignore[index]
    _retag_fonts(resources)
    form[NameObject("/Resources")] = resources
    return writer._add_object(form.flate_encode())  # pypdf has no public way to add a stream


def _retag_fonts(resources: DictionaryObject) -> None:
    """Replace reportlab's subset tags (``AAAAAA+`` in every file it makes) with six letters
    derived from the subset's own bytes: tags must tell subsets apart within a file
    (ISO 32000 9.6.4), and a document stamped by several signers holds several subsets."""
    fonts = resources.get("/Font")
    if fonts is None:
        return
    for reference in fonts.get_object().values():
        font = reference.get_object()
        descriptor = font.get("/FontDescriptor")
        if descriptor is None:
            continue
        descriptor = descriptor.get_object()
        program = descriptor.get("/FontFile2")
        if program is None:
            continue
        digest = hashlib.sha256(program.get_object().get_data()).digest()
        tag = "".join(chr(65 + byte % 26) for byte in digest[:6])
        for holder, key in ((font, "/BaseFont"), (descriptor, "/FontName")):
            name = str(holder.get(key, ""))
            if len(name) > 8 and name[7] == "+":
                holder[NameObject(key)] = NameObject(f"/{tag}{name[7:]}")


def _attach(
    page: PageObject,
    form: IndirectObject,
    geometry: _Page,
    opener: IndirectObject,
    writer: PdfWriter,
) -> None:
    """Draw ``form`` over ``page`` after its content, the page's resources copied (not
    edited: they may be shared with pages we do not touch). pypdf has already copied
    inherited attributes (``/Resources``, ``/Rotate``, the boxes) into each page."""
    old = page.get("/Resources")
    resources = DictionaryObject(old.get_object() if old is not None else {})
    old_xobjects = resources.get("/XObject")
    xobjects = DictionaryObject(old_xobjects.get_object() if old_xobjects is not None else {})
    taken = set(xobjects)
    name = next(
        f"/SignbotStamp{n}" for n in range(1, len(taken) + 2) if f"/SignbotStamp{n}" not in taken
    )
    xobjects[NameObject(name)] = form
    resources[NameObject("/XObject")] = xobjects
    page[NameObject("/Resources")] = resources
    ops = " ".join(f"{v:.4f}".rstrip("0").rstrip(".") or "0" for v in geometry.matrix())
    closer = _stream(writer, f"\nQ\nq {ops} cm {name} Do Q\n".encode())
    contents = page.get("/Contents")
    streams: list[object] = []
    if contents is not None:
        resolved = contents.get_object()
        streams = list(resolved) if isinstance(resolved, ArrayObject) else [contents]
    page[NameObject("/Contents")] = ArrayObject([opener, *streams, closer])


def _stream(writer: PdfWriter, data: bytes) -> IndirectObject:
    stream = DecodedStreamObject()
    stream.set_data(data)
    return writer._add_object(stream)
