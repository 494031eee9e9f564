"""Where a field goes on a page: by coordinates, or next to an anchor phrase found in the text.

Certyneo places a field either at ``x``/``y`` (points, measured from the top-left corner of the
page *as the user sees it*) or next to an anchor phrase. This module turns both into a
:class:`Box` in that same display space, which the signer page overlays on the page images and
``bot.signing.stamp`` draws into the PDF.

**Display space.** What a viewer shows is the page's crop box (intersected with its media box,
as PDFium does), turned clockwise by ``/Rotate``. A :class:`Box` is in points with the origin at
the top-left corner of that displayed page, ``y`` growing downwards — so on a page with
``/Rotate 90`` a box is in landscape coordinates, whatever the page's own user space. Text
positions come from PDFium in user space and are mapped with :func:`_to_display`, a
rotation by a multiple of 90° (which keeps boxes axis-aligned). ``/Rotate`` is normalised the
way PDFium does it: modulo 360, rounded down to a multiple of 90.

**Matching.** A phrase matches case-insensitively, any whitespace run in the document matches
any whitespace run in the phrase (a phrase broken over two lines is found), and PDFium joins
separate text runs into one character stream, so a phrase drawn as several ``Tj`` pieces is
found too. The returned box is the union of the matched characters' loose boxes (the font's
ascent-to-descent line box, so a phrase's box does not depend on its letters); for a phrase that
spans two lines it covers both lines. Occurrences are counted in reading order: page by page, in
PDFium's text order within a page. Text is not Unicode-normalised: a PDF that stores "é" as
"e" + combining accent does not match a typed "é".

**Placement** (:func:`place`), with a ``gap`` (4 pt by default) between anchor and field:

- ``right``: starts ``gap`` after the phrase's right edge, vertically centred on the phrase;
- ``left``: ends ``gap`` before the phrase's left edge, vertically centred on it;
- ``below``: ``gap`` under the phrase's bottom, left-aligned with the phrase;
- ``above``: ends ``gap`` above the phrase's top, left-aligned with the phrase.

Every box is then clamped into its page (moved, and shrunk only if larger than the page), even
if that makes it overlap the phrase: a field off the page could never be signed.

PDFium is not thread-safe; every call here holds the lock the page renderer holds
(``previews._PDFIUM``), so rendering and text extraction never run at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from bot.documents.previews import _PDFIUM

PLACEMENTS = ("right", "below", "above", "left")
DEFAULT_GAP = 4.0


@dataclass(frozen=True)
class Box:
    """A rectangle on a displayed page: points, origin at the top-left corner, y downwards."""

    page: int
    """1-based page number within its document."""
    x: float
    y: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def bottom(self) -> float:
        return self.y + self.height


@dataclass(frozen=True)
class FieldSpec:
    """One field of one document as the API describes it (Certyneo's defaults)."""

    page_number: int = 1
    x: float = 72.0
    y: float = 700.0
    """From the top edge of the displayed page."""
    width: float = 150.0
    height: float = 40.0
    anchor_text: str | None = None
    """Blank or ``None``: the field is placed by its coordinates alone."""
    anchor_placement: str | None = "right"
    """``right`` | ``below`` | ``above`` | ``left`` (any case; blank or ``None``: ``right``)."""
    anchor_index: int = 0
    """Which occurrence of the phrase, 0-based, counted across the document."""


@dataclass(frozen=True)
class Resolved:
    box: Box
    anchor_found: bool | None
    """``None``: no anchor; ``True``: placed next to it; ``False``: not found, so the box is
    the given coordinates (the caller reports that)."""


@dataclass(frozen=True)
class _Geometry:
    """What maps user space to display space: the visible box and the clockwise rotation."""

    left: float
    bottom: float
    right: float
    top: float
    rotation: int

    @property
    def size(self) -> tuple[float, float]:
        width, height = self.right - self.left, self.top - self.bottom
        return (height, width) if self.rotation in (90, 270) else (width, height)


def _to_display(geometry: _Geometry, ux: float, uy: float) -> tuple[float, float]:
    """A user-space point as (x from the left, y from the top) of the displayed page."""
    g = geometry
    if g.rotation == 90:
        return uy - g.bottom, ux - g.left
    if g.rotation == 180:
        return g.right - ux, uy - g.bottom
    if g.rotation == 270:
        return g.top - uy, g.right - ux
    return ux - g.left, g.top - uy


@dataclass
class _Document:
    """An open PDFium document whose page geometry and text load once, when first needed.

    Use only while holding ``_PDFIUM``; :meth:`close` releases PDFium's memory."""

    pdf: bytes
    doc: pdfium.PdfDocument = field(init=False)
    _geometry: dict[int, _Geometry] = field(default_factory=dict)
    _text: dict[int, tuple[pdfium.PdfTextPage, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            self.doc = pdfium.PdfDocument(self.pdf)
        except pdfium.PdfiumError as exc:
            raise ValueError(f"not a readable PDF ({exc})") from exc

    def __len__(self) -> int:
        return len(self.doc)

    def geometry(self, index: int) -> _Geometry:
        if index not in self._geometry:
            page = self.doc[index]
            left, bottom, right, top = page.get_bbox()  # crop box ∩ media box
            rotation = page.get_rotation() % 360 // 90 * 90
            self._geometry[index] = _Geometry(left, bottom, right, top, rotation)
        return self._geometry[index]

    def text(self, index: int) -> tuple[pdfium.PdfTextPage, str]:
        if index not in self._text:
            textpage = self.doc[index].get_textpage()
            self._text[index] = (textpage, textpage.get_text_range())
        return self._text[index]

    def occurrences(self, pattern: re.Pattern[str]) -> Iterator[Box]:
        """Every match of ``pattern``, page by page, as the union of its characters' boxes."""
        for index in range(len(self)):
            textpage, text = self.text(index)
            for match in pattern.finditer(text):
                box = self._union(textpage, text, match.start(), match.end())
                if box is not None:
                    yield self._displayed(index, box)

    @staticmethod
    def _union(
        textpage: pdfium.PdfTextPage, text: str, start: int, end: int
    ) -> tuple[float, float, float, float] | None:
        """The user-space union of the loose boxes of the visible characters in
        ``text[start:end]`` (text indices, translated to PDFium's character indices)."""
        left = bottom = float("inf")
        right = top = float("-inf")
        for text_index in range(start, end):
            if text[text_index].isspace():
                continue  # generated spaces and line breaks have no meaningful box
            char = pdfium_c.FPDFText_GetCharIndexFromTextIndex(textpage, text_index)
            if char < 0:
                continue
            rect = pdfium_c.FS_RECTF()
            if not pdfium_c.FPDFText_GetLooseCharBox(textpage, char, rect):
                continue
            left, right = min(left, rect.left), max(right, rect.right)
            bottom, top = min(bottom, rect.bottom), max(top, rect.top)
        if left > right or bottom > top:
            return None
        return left, bottom, right, top

    def _displayed(self, index: int, user: tuple[float, float, float, float]) -> Box:
        geometry = self.geometry(index)
        left, bottom, right, top = user
        x1, y1 = _to_display(geometry, left, bottom)
        x2, y2 = _to_display(geometry, right, top)
        return Box(index + 1, min(x1, x2), min(y1, y2), abs(x2 - x1), abs(y2 - y1))

    def close(self) -> None:
        for textpage, _ in self._text.values():
            textpage.close()
        self.doc.close()


def _pattern(phrase: str) -> re.Pattern[str]:
    words = phrase.split()
    return re.compile(r"\s+".join(re.escape(word) for word in words), re.IGNORECASE)


def _placement(value: str | None) -> str:
    """A placement as given (any case, blank meaning ``right``), or ``ValueError``."""
    where = (value or "").strip().lower() or "right"
    if where not in PLACEMENTS:
        raise ValueError(f"anchor placement must be one of {', '.join(PLACEMENTS)}")
    return where


def find_anchors(pdf: bytes, phrase: str) -> list[Box]:
    """Every occurrence of ``phrase`` in ``pdf``, in reading order (see the module docstring).

    A blank phrase occurs nowhere (``[]``); an unreadable PDF raises ``ValueError``."""
    if not phrase.split():
        return []
    pattern = _pattern(phrase)
    with _PDFIUM:
        document = _Document(pdf)
        try:
            return list(document.occurrences(pattern))
        finally:
            document.close()


def page_sizes(pdf: bytes) -> list[tuple[float, float]]:
    """The displayed (width, height) of each page, in points: what a page image shows, so the
    signer page can lay :class:`Box` es over the images (a ``/Rotate 90`` page is landscape)."""
    with _PDFIUM:
        document = _Document(pdf)
        try:
            return [document.geometry(index).size for index in range(len(document))]
        finally:
            document.close()


def place(
    anchor: Box,
    placement: str | None,
    width: float,
    height: float,
    page_size: tuple[float, float],
    gap: float = DEFAULT_GAP,
) -> Box:
    """The ``width`` x ``height`` field box next to ``anchor`` (rules in the module docstring),
    clamped into a displayed page of ``page_size``. A blank placement means ``right``."""
    where = _placement(placement)
    _check_size(width, height)
    middle = anchor.y + anchor.height / 2 - height / 2
    if where == "right":
        x, y = anchor.right + gap, middle
    elif where == "left":
        x, y = anchor.x - gap - width, middle
    elif where == "below":
        x, y = anchor.x, anchor.bottom + gap
    else:
        x, y = anchor.x, anchor.y - gap - height
    return clamp(Box(anchor.page, x, y, width, height), page_size)


def clamp(box: Box, page_size: tuple[float, float]) -> Box:
    """``box`` moved (and, if larger than the page, shrunk) so that it lies inside the page."""
    page_width, page_height = page_size
    width, height = min(box.width, page_width), min(box.height, page_height)
    x = min(max(box.x, 0.0), page_width - width)
    y = min(max(box.y, 0.0), page_height - height)
    return replace(box, x=x, y=y, width=width, height=height)


def _check_size(width: float, height: float) -> None:
    if not (width > 0 and height > 0):
        raise ValueError("a field's width and height must be positive")


def resolve(pdf: bytes, fields: Sequence[FieldSpec]) -> list[Resolved]:
    """The box of each field of one document, in order.

    The PDF is opened once and each page's text extracted at most once, however many fields
    there are; pages are read only as far as the anchors asked for require.

    - No anchor: the given coordinates, clamped into the page. A ``page_number`` outside the
      document raises ``ValueError("page N does not exist (the document has M pages)")`` — a
      client error the API answers with 400.
    - Anchor found: placed next to occurrence ``anchor_index`` (its page, whatever
      ``page_number`` says).
    - Anchor not found: the given coordinates as a fallback, with the page clamped into the
      document (the coordinates were only a fallback, so they do not fail the request).

    Also raises ``ValueError`` for a non-positive size, a negative ``anchor_index``, an
    unknown placement or an unreadable PDF.
    """
    for spec in fields:
        _check_size(spec.width, spec.height)
        if spec.anchor_index < 0:
            raise ValueError("anchorIndex must not be negative")
        if _anchored(spec):
            _placement(spec.anchor_placement)
    with _PDFIUM:
        document = _Document(pdf)
        try:
            return _resolve(document, fields)
        finally:
            document.close()


def _anchored(spec: FieldSpec) -> bool:
    return bool(spec.anchor_text and spec.anchor_text.strip())


def _resolve(document: _Document, fields: Sequence[FieldSpec]) -> list[Resolved]:
    pages = len(document)
    found: dict[str, tuple[Iterator[Box], list[Box]]] = {}
    resolved: list[Resolved] = []
    for spec in fields:
        anchor = _nth(document, found, spec.anchor_text, spec.anchor_index)
        if anchor is not None:
            size = document.geometry(anchor.page - 1).size
            box = place(anchor, spec.anchor_placement, spec.width, spec.height, size)
            resolved.append(Resolved(box, True))
            continue
        page = spec.page_number
        if _anchored(spec):
            page = min(max(page, 1), pages)
        elif not 1 <= page <= pages:
            raise ValueError(f"page {page} does not exist (the document has {pages} pages)")
        box = Box(page, spec.x, spec.y, spec.width, spec.height)
        size = document.geometry(page - 1).size
        resolved.append(Resolved(clamp(box, size), False if _anchored(spec) else None))
    return resolved


def _nth(
    document: _Document,
    found: dict[str, tuple[Iterator[Box], list[Box]]],
    phrase: str | None,
    index: int,
) -> Box | None:
    """Occurrence ``index`` of ``phrase``; the search for each phrase resumes where it stopped,
    so fields sharing a phrase read each page once."""
    if not phrase or not phrase.strip():
        return None
    key = " ".join(phrase.split()).lower()
    if key not in found:
        found[key] = (document.occurrences(_pattern(phrase)), [])
    pending, boxes = found[key]
    while len(boxes) <= index:
        box = next(pending, None)
        if box is None:
            break
        boxes.append(box)
    return boxes[index] if len(boxes) > index else None
