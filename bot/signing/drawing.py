"""Shared drawing helpers for the PDFs we produce before sealing (signed document, audit trail).

Why a module of its own: both PDFs must look alike (one font, one palette, the same footer and
the same TEST mark), and the costly parts — parsing the TrueType fonts, drawing the TEST mark —
are done once per process and shared.

- **Fonts**: the DejaVu fonts shipped in ``fonts/`` and nothing else. A fresh machine has no
  system fonts, and the PDF base-14 fonts cover Latin-1 only ("Nguyễn", "Łukasz" would break).
  Every glyph used is embedded (subset), which an archived evidence document should do anyway.
- **User text** is never markup: :func:`clean` strips what cannot be drawn (control and bidi
  override characters, lone surrogates), :func:`esc` escapes it for platypus ``Paragraph``
  markup, :func:`fit` wraps and truncates it with an ellipsis for direct canvas drawing.
- **"Page n of m"** needs the page count before the first footer is drawn:
  :func:`deferred_canvas` holds the pages until ``save()`` and decorates them then.
- **The TEST mark**: :func:`draw_test_mark`, on our own pages and (through a Form XObject,
  ``compose.mark_pages``) over uploaded ones.
"""

from __future__ import annotations

import functools
import math
import unicodedata
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Paragraph, Table, TableStyle

from bot.timeutil import to_utc

FONT = "SignbotSans"
FONT_BOLD = "SignbotSans-Bold"
_FONT_DIR = Path(__file__).parent / "fonts"

INK = colors.HexColor("#1F2937")
MUTED = colors.HexColor("#6B7280")
RULE = colors.HexColor("#D1D5DB")
SHADE = colors.HexColor("#F3F4F6")
SIGNATURE_INK = colors.HexColor("#1E3A8A")
TEST_RED = colors.HexColor("#C81E1E")

TEST_TEXT = "TEST — not legally binding"
_TEST_ALPHA = 0.22

_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@functools.cache
def register_fonts() -> None:
    """Register the DejaVu faces once per process (parsing them costs ~10 ms).

    The family mapping lets ``<b>`` in Paragraph markup pick the bold face; there is no
    italic face, so ``<i>`` falls back to the upright one rather than to a system font.
    """
    pdfmetrics.registerFont(TTFont(FONT, str(_FONT_DIR / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont(FONT_BOLD, str(_FONT_DIR / "DejaVuSans-Bold.ttf")))
    pdfmetrics.registerFontFamily(
        FONT, normal=FONT, bold=FONT_BOLD, italic=FONT, boldItalic=FONT_BOLD
    )


# --- text -------------------------------------------------------------------------------------


def clean(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` as something safe to draw: NFC-composed (so "ễ" is one glyph, not a letter and
    a floating accent), without control, bidi-override or unassigned characters, whitespace
    runs collapsed. Newlines survive only when asked (consent text, decline reasons)."""
    raw = "" if text is None else str(text)
    if raw.isascii() and raw.isprintable():  # the common case (hashes, IPs, user agents)
        return " ".join(raw.split())
    raw = unicodedata.normalize("NFC", raw)
    lines = raw.splitlines() if keep_newlines else [raw]
    return "\n".join(" ".join(_drawable(line).split()) for line in lines).strip("\n")


def _drawable(line: str) -> str:
    return "".join(
        " " if ch.isspace() else ch
        for ch in line
        if ch.isspace()
        or (ch not in _BIDI_CONTROLS and unicodedata.category(ch) not in ("Cc", "Cs", "Co", "Cn"))
    )


def esc(text: object) -> str:
    """User text as platypus Paragraph markup: literal, with newlines as line breaks."""
    return "<br/>".join(escape(line) for line in clean(text, keep_newlines=True).split("\n"))


def width(text: str, font: str, size: float) -> float:
    return pdfmetrics.stringWidth(text, font, size)


def fit(text: object, font: str, size: float, max_width: float, max_lines: int = 1) -> list[str]:
    """``text`` wrapped at spaces into at most ``max_lines`` lines no wider than ``max_width``;
    a word too long for a line is cut, and text that does not fit ends with an ellipsis.

    Widths add up (reportlab applies no kerning), so each word is measured once."""
    words = clean(text).split(" ")
    space = width(" ", font, size)
    lines: list[str] = []
    current: list[str] = []
    used = 0.0
    for index, word in enumerate(words):
        word_width = width(word, font, size)
        if current and used + space + word_width <= max_width:
            current.append(word)
            used += space + word_width
            continue
        if current:
            lines.append(" ".join(current))
            current, used = [], 0.0
        while word_width > max_width and len(lines) < max_lines:
            cut = _longest_prefix(word, font, size, max_width)
            lines.append(word[:cut])
            word = word[cut:]
            word_width = width(word, font, size)
        if len(lines) >= max_lines:
            if word or index + 1 < len(words):
                lines[-1] = _with_ellipsis(lines[-1], font, size, max_width)
            return lines
        current, used = [word], word_width
    if current:
        lines.append(" ".join(current))
    return lines or [""]


def _longest_prefix(text: str, font: str, size: float, max_width: float) -> int:
    low, high = 1, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if width(text[:mid], font, size) <= max_width:
            low = mid
        else:
            high = mid - 1
    return low


def _with_ellipsis(line: str, font: str, size: float, max_width: float) -> str:
    line = line.rstrip()
    while line and width(line + "…", font, size) > max_width:
        line = line[:-1].rstrip()
    return line + "…"


def utc_text(value: datetime, *, seconds: bool = True) -> str:
    """``2026-11-28 14:03:22 UTC`` — how every time is printed (a naive value is UTC)."""
    fmt = "%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC"
    return to_utc(value).strftime(fmt)


def metadata(title: str, when: datetime) -> dict[str, str]:
    """The document information both PDFs carry; dated by the data, not the clock, so the
    same input gives the same bytes."""
    stamp = to_utc(when).strftime("D:%Y%m%d%H%M%SZ")
    return {
        "/Title": clean(title)[:200],
        "/Producer": "signbot",
        "/Creator": "signbot",
        "/CreationDate": stamp,
        "/ModDate": stamp,
    }


def humanize(code: str | None) -> str:
    """``CARBON_COPY`` → ``Carbon copy``; how roles and statuses are printed."""
    text = clean(code).replace("_", " ").strip()
    return text[:1].upper() + text[1:].lower() if text else "—"


def auth_label(method: str | None) -> str:
    """The recipient's authentication as a reader understands it: every signer proves control
    of the email address the link was sent to; ``EMAIL_OTP`` adds a one-time code."""
    if method in (None, "", "NONE"):
        return "Email link"
    if method == "EMAIL_OTP":
        return "Email one-time code"
    return clean(method)


# --- paragraph styles -------------------------------------------------------------------------


@functools.cache
def styles() -> dict[str, ParagraphStyle]:
    """The few paragraph styles both documents use (built once; they are immutable in use)."""
    register_fonts()
    base = ParagraphStyle("body", fontName=FONT, fontSize=8.5, leading=11, textColor=INK)
    return {
        "title": ParagraphStyle("title", base, fontName=FONT_BOLD, fontSize=19, leading=24),
        "subtitle": ParagraphStyle("subtitle", base, fontSize=10, leading=13, textColor=MUTED),
        "h2": ParagraphStyle(
            "h2", base, fontName=FONT_BOLD, fontSize=11, leading=14, spaceBefore=12, spaceAfter=5
        ),
        "body": base,
        "para": ParagraphStyle("para", base, spaceAfter=5),
        "label": ParagraphStyle("label", base, fontSize=8, leading=10.5, textColor=MUTED),
        "cell": ParagraphStyle("cell", base, fontSize=7.5, leading=9.5),
        "head": ParagraphStyle(
            "head", base, fontName=FONT_BOLD, fontSize=7.5, leading=9.5, textColor=MUTED
        ),
        "small": ParagraphStyle("small", base, fontSize=6.5, leading=8.3, textColor=INK),
        "banner": ParagraphStyle(
            "banner", base, fontName=FONT_BOLD, fontSize=10, leading=13, textColor=TEST_RED
        ),
    }


# --- page decoration --------------------------------------------------------------------------

Decorate = Callable[[Canvas, int, int], None]
"""Draws a page's footer (and TEST mark) given its number and the page count."""


class _DeferredCanvas(Canvas):
    """A canvas that keeps each finished page until ``save()``, when the page count is known,
    then runs ``decorate(canvas, number, total)`` over each page before emitting it."""

    def __init__(self, *args: Any, decorate: Decorate, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._decorate = decorate
        self._held: list[dict[str, Any]] = []

    def showPage(self) -> None:  # reportlab's name
        self._held.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        held, total = self._held, len(self._held)
        for number, state in enumerate(held, start=1):
            self.__dict__.update(state)
            self._decorate(self, number, total)
            Canvas.showPage(self)
        Canvas.save(self)


def deferred_canvas(decorate: Decorate) -> Callable[..., Canvas]:
    """A ``canvasmaker`` for ``SimpleDocTemplate.build`` whose pages get ``decorate``d."""
    return functools.partial(_DeferredCanvas, decorate=decorate)


def footer(
    canvas: Canvas, page_width: float, left: str, right: str, *, test: bool, margin: float
) -> None:
    """A thin rule and one line of small grey text at the bottom of the page; ``left`` is cut
    with an ellipsis rather than run into ``right``."""
    canvas.saveState()
    canvas.setStrokeColor(RULE)
    canvas.setLineWidth(0.5)
    canvas.line(margin, 34, page_width - margin, 34)
    canvas.setFont(FONT, 7)
    canvas.setFillColor(MUTED)
    right_width = width(right, FONT, 7)
    left_lines = fit(left, FONT, 7, page_width - 2 * margin - right_width - 24)
    canvas.drawString(margin, 23, left_lines[0])
    canvas.drawRightString(page_width - margin, 23, right)
    if test:
        canvas.setFillColor(TEST_RED)
        canvas.setFont(FONT_BOLD, 7)
        canvas.drawCentredString(page_width / 2, 12, "TEST (sandbox) — not legally binding")
    canvas.restoreState()


def draw_test_mark(
    canvas: Canvas, page_width: float, page_height: float, alpha: float = _TEST_ALPHA
) -> None:
    """The diagonal, semi-transparent TEST mark across a page of the given size, reading
    from bottom left to top right, sized to about two thirds of the diagonal."""
    register_fonts()
    diagonal = math.hypot(page_width, page_height)
    size = max(4.0, 0.66 * diagonal / width(TEST_TEXT, FONT_BOLD, 1))  # grows with the page
    canvas.saveState()
    canvas.setFillColor(TEST_RED)
    canvas.setFillAlpha(alpha)
    canvas.translate(page_width / 2, page_height / 2)
    canvas.rotate(math.degrees(math.atan2(page_height, page_width)))
    canvas.setFont(FONT_BOLD, size)
    canvas.drawCentredString(0, -0.35 * size, TEST_TEXT)
    canvas.restoreState()


# --- tables -----------------------------------------------------------------------------------

CELL_PAD = 4.0


def bounded(value: object, column: float, max_lines: int, size: float = 7.5) -> str:
    """User text for a table cell of ``column`` points as Paragraph markup (in the regular face
    at ``size``), cut to ``max_lines`` so that no value can grow a cell past a page."""
    lines = fit(value, FONT, size, column - 2 * CELL_PAD, max_lines)
    return "<br/>".join(escape(line) for line in lines)


def head(text: str) -> Paragraph:
    return Paragraph(text, styles()["head"])


def table(rows: list[list[Any]], widths: Sequence[float], *, header: bool = True) -> Table:
    """A plain table: thin rules under rows, a shaded head row repeated on each page."""
    commands: list[tuple[Any, ...]] = [
        ("FONT", (0, 0), (-1, -1), FONT, 7.5),  # for plain-text cells; Helvetica otherwise
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), CELL_PAD),
        ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PAD),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
        ("LINEBELOW", (0, 0), (-1, -1), 0.5, RULE),
    ]
    if header:
        commands.append(("BACKGROUND", (0, 0), (-1, 0), SHADE))
    return Table(
        rows, colWidths=list(widths), repeatRows=1 if header else 0, style=TableStyle(commands)
    )


PAGE_MARGIN = 50.0
"""Margins of the pages we author, in points."""


def a4_template(buffer: Any, title: str) -> Any:
    """The A4 page frame every PDF we author uses (signature and certificate pages, audit
    trail): same margins, reproducible output, and DejaVu as the initial font so that no
    un-embedded Helvetica ever enters a sealed file."""
    from reportlab.lib.pagesizes import A4
    from reportlab.platypus import SimpleDocTemplate

    return SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=PAGE_MARGIN - 6,
        rightMargin=PAGE_MARGIN - 6,
        topMargin=PAGE_MARGIN - 6,
        bottomMargin=PAGE_MARGIN,
        invariant=True,
        initialFontName=FONT,
        title=title,
        author="signbot",
    )
