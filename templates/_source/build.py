"""Regenerate the shipped template PDFs from the text sources beside this script.

    .venv/bin/python templates/_source/build.py          # writes templates/*.pdf
    .venv/bin/python templates/_source/build.py --check  # exit 1 if a PDF is out of date

Each ``NAME.txt`` here becomes ``templates/NAME.pdf``. The output is byte-for-byte
reproducible (reportlab's invariant mode: fixed dates and document ID, fonts subset the same
way), so a rebuild shows in ``git status`` only when a text really changed.

Source format (deliberately tiny)::

    title: MUTUAL NON-DISCLOSURE AGREEMENT      header lines, up to the first "---"
    subtitle: …                                 (optional)
    footer: Mutual NDA                          left part of every page's footer
    initials: Company initials:|Counterparty initials:
                                                footer labels on every page but the last
    ---
    Paragraphs separated by blank lines; **bold**; a line of its own starting with
    "## " is a clause heading, "(a) " an indented item.

    ::fields HEADING          a block of label + blank-line rows, one label per line,
    Label one:                until "::end"; with "::signature HEADING" the first row is
    ::end                     tall enough for a signature and the block is kept together
    ::box Label               a label above a framed area for free text
    ::checkbox Text           a paragraph with room for a checkbox on its left
    ::pagebreak

Anchors in the YAMLs are the labels written here, so a label is a promise: renaming one
means updating the YAML, which ``signbot templates check`` verifies.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_JUSTIFY
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
)

HERE = Path(__file__).resolve().parent
OUT = HERE.parent
FONTS = HERE.parent.parent / "bot" / "signing" / "fonts"
FONT, BOLD = "TemplateSans", "TemplateSans-Bold"
INK = colors.HexColor("#111827")
MUTED = colors.HexColor("#6B7280")
RULE = colors.HexColor("#9CA3AF")
MARGIN = 60.0
BOTTOM = 96.0
"""Room under the text for the initials line (y = 58) and the footer (y = 30)."""
LABEL_WIDTH = 190.0
BOX_HEIGHT = 78.0
"""A ``::box`` area: room for a 64-point-high TEXT field placed below its label."""


@dataclass
class Source:
    name: str
    title: str
    subtitle: str = ""
    footer: str = ""
    initials: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)


def parse(path: Path) -> Source:
    head, _, body = path.read_text(encoding="utf-8").partition("\n---\n")
    meta = dict(line.split(": ", 1) for line in head.strip().splitlines())
    initials = [p.strip() for p in meta.get("initials", "").split("|") if p.strip()]
    return Source(
        path.stem,
        meta["title"],
        meta.get("subtitle", ""),
        meta.get("footer", meta["title"]),
        initials,
        body.splitlines(),
    )


def styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName=FONT, fontSize=9.5, leading=13.4, textColor=INK)
    return {
        "title": ParagraphStyle(
            "title", base, fontName=BOLD, fontSize=15, leading=19, alignment=TA_CENTER
        ),
        "subtitle": ParagraphStyle(
            "subtitle", base, textColor=MUTED, alignment=TA_CENTER, spaceAfter=14
        ),
        "body": ParagraphStyle("p", base, alignment=TA_JUSTIFY, spaceAfter=5.5),
        "item": ParagraphStyle(
            "item", base, alignment=TA_JUSTIFY, leftIndent=22, firstLineIndent=-16, spaceAfter=3
        ),
        "check": ParagraphStyle("check", base, leftIndent=26, spaceBefore=4, spaceAfter=8),
        "heading": ParagraphStyle(
            "heading",
            base,
            fontName=BOLD,
            fontSize=10,
            spaceBefore=7,
            spaceAfter=3,
            keepWithNext=1,
        ),
        "label": ParagraphStyle("label", base, fontSize=9.5),
        "block": ParagraphStyle("block", base, fontName=BOLD, spaceBefore=10, spaceAfter=4),
    }


def markup(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escape(text))


class Rows(Flowable):
    """Label + blank rule rows (a form block); the rule leaves room for the field."""

    def __init__(self, labels: list[str], tall_first: bool, style: ParagraphStyle) -> None:
        super().__init__()
        self.labels, self.tall_first, self.style = labels, tall_first, style
        # A signature (40 pt) is centred on its label: the next row must start at least
        # 20 + 12 pt below, or the fields placed next to the labels would overlap.
        row = 34.0 if tall_first else 28.0
        self.heights = [46.0 if tall_first and i == 0 else row for i in range(len(labels))]

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        self.width = available_width
        return available_width, sum(self.heights)

    def draw(self) -> None:
        c = self.canv
        y = sum(self.heights)
        for label, height in zip(self.labels, self.heights, strict=True):
            y -= height
            baseline = y + 7
            c.setFont(FONT, self.style.fontSize)
            c.setFillColor(INK)
            c.drawString(0, baseline, label)
            c.setStrokeColor(RULE)
            c.setLineWidth(0.6)
            c.line(LABEL_WIDTH, baseline - 3, self.width, baseline - 3)


class Frame(Flowable):
    """An empty framed area for free text (a tall TEXT field placed below its label)."""

    def __init__(self, height: float) -> None:
        super().__init__()
        self.height = height

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        self.width = available_width
        return available_width, self.height

    def draw(self) -> None:
        self.canv.setStrokeColor(RULE)
        self.canv.setLineWidth(0.6)
        self.canv.rect(0, 0, self.width, self.height)


def story(source: Source, st: dict[str, ParagraphStyle]) -> list[Flowable]:
    out: list[Flowable] = [Paragraph(markup(source.title), st["title"])]
    if source.subtitle:
        out.append(Paragraph(markup(source.subtitle), st["subtitle"]))
    else:
        out.append(Spacer(1, 12))
    lines = source.body
    i, paragraph = 0, []

    def flush() -> None:
        if paragraph:
            text = " ".join(paragraph)
            kind = "item" if re.match(r"^\([a-z]+\) ", text) else "body"
            out.append(Paragraph(markup(text), st[kind]))
            paragraph.clear()

    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line:
            flush()
        elif line.startswith("## "):
            flush()
            out.append(Paragraph(markup(line[3:]), st["heading"]))
        elif line.startswith(("::fields", "::signature")):
            flush()
            directive, _, heading = line.partition(" ")
            labels = []
            while lines[i].strip() != "::end":
                labels.append(lines[i].strip())
                i += 1
            i += 1
            block: list[Flowable] = []
            if heading:
                block.append(Paragraph(markup(heading), st["block"]))
            block.append(Rows(labels, directive == "::signature", st["label"]))
            out += [KeepTogether(block), Spacer(1, 6)]
        elif line.startswith("::box "):
            flush()
            label = Paragraph(markup(line[len("::box ") :]), st["label"])
            out += [KeepTogether([label, Spacer(1, 4), Frame(BOX_HEIGHT)]), Spacer(1, 8)]
        elif line.startswith("::checkbox "):
            flush()
            out.append(Paragraph(markup(line[len("::checkbox ") :]), st["check"]))
        elif line == "::pagebreak":
            flush()
            out.append(PageBreak())
        else:
            paragraph.append(line)
    flush()
    return out


class Deferred(Canvas):
    """Keeps every page until ``save`` so the footer can say "Page n of m" and leave the
    initials line off the last page."""

    def __init__(self, *args: object, source: Source, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.source = source
        self.pages: list[dict[str, object]] = []

    def showPage(self) -> None:  # reportlab's name
        self.pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self.pages)
        for number, state in enumerate(self.pages, start=1):
            self.__dict__.update(state)
            self.decorate(number, total)
            super().showPage()
        super().save()

    def decorate(self, number: int, total: int) -> None:
        width = A4[0]
        self.saveState()
        if number < total and self.source.initials:
            self.setFont(FONT, 8.5)
            self.setFillColor(INK)
            self.setStrokeColor(RULE)
            self.setLineWidth(0.6)
            slot = (width - 2 * MARGIN) / len(self.source.initials)
            for k, label in enumerate(self.source.initials):
                x = MARGIN + k * slot
                self.drawString(x, 58, label)
                end = x + pdfmetrics.stringWidth(label, FONT, 8.5) + 4
                self.line(end, 55, end + 72, 55)
        self.setStrokeColor(RULE)
        self.setLineWidth(0.4)
        self.line(MARGIN, 42, width - MARGIN, 42)
        self.setFont(FONT, 7.5)
        self.setFillColor(MUTED)
        self.drawString(MARGIN, 30, self.source.footer)
        self.drawRightString(width - MARGIN, 30, f"Page {number} of {total}")
        self.restoreState()


def render(source: Source) -> bytes:
    buffer = BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=56,
        bottomMargin=BOTTOM,
        invariant=True,
        initialFontName=FONT,
        title=source.title.title(),
        author="signbot",
        subject=f"signbot template {source.name}",
        creator="signbot templates/_source/build.py",
        producer="signbot",
    )
    doc.build(
        story(source, styles()),
        canvasmaker=lambda *a, **k: Deferred(*a, source=source, **k),
    )
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report out-of-date PDFs")
    args = parser.parse_args()
    pdfmetrics.registerFont(TTFont(FONT, str(FONTS / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont(BOLD, str(FONTS / "DejaVuSans-Bold.ttf")))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=BOLD, italic=FONT, boldItalic=BOLD)
    stale = 0
    for path in sorted(HERE.glob("*.txt")):
        target = OUT / f"{path.stem}.pdf"
        data = render(parse(path))
        current = target.read_bytes() if target.exists() else b""
        if data == current:
            print(f"{target.name}: up to date")
            continue
        stale += 1
        if args.check:
            print(f"{target.name}: out of date")
        else:
            target.write_bytes(data)
            print(f"{target.name}: written ({len(data):,} bytes)")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
