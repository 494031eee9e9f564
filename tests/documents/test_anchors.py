"""anchors: phrases found in real PDFs (made here with reportlab), checked against where they
were drawn and against what PDFium renders; placement rules; coordinate fields."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

import pypdfium2 as pdfium
import pytest
from PIL import Image
from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject, NumberObject, RectangleObject
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from bot.documents import anchors, previews
from bot.documents.anchors import Box, FieldSpec, Resolved, find_anchors, page_sizes, place, resolve
from tests.support.timing import cpu_seconds

SIZE = 12.0
"""Helvetica 12 pt: PDFium's line box for it runs from 0.224 em below the baseline to 0.945
em above (Helvetica's font box), so a phrase drawn at baseline b spans b-2.7 … b+11.3."""
ASCENT, DESCENT = 0.945 * SIZE, 0.224 * SIZE
LETTER = (612.0, 792.0)

Draw = Callable[[Canvas], None]


def make_pdf(*pages: Draw, size: tuple[float, float] = LETTER) -> bytes:
    buf = io.BytesIO()
    pdf = Canvas(buf, pagesize=size)
    for draw in pages:
        pdf.setFont("Helvetica", SIZE)
        draw(pdf)
        pdf.showPage()
    pdf.save()
    return buf.getvalue()


def runs(x: float, baseline: float, *parts: str) -> Draw:
    """``parts`` as separate strings (separate ``Tj``), each starting where the last ended."""

    def draw(pdf: Canvas) -> None:
        cursor = x
        for part in parts:
            pdf.drawString(cursor, baseline, part)
            cursor += stringWidth(part, "Helvetica", SIZE)

    return draw


def lines(*placed: tuple[float, float, str]) -> Draw:
    def draw(pdf: Canvas) -> None:
        for x, baseline, text in placed:
            pdf.drawString(x, baseline, text)

    return draw


def drawn_box(page: int, x: float, baseline: float, text: str, height: float = 792) -> Box:
    """Where ``text`` drawn at (x, baseline) on an unrotated page shows, in display space."""
    top = height - (baseline + ASCENT)
    return Box(page, x, top, stringWidth(text, "Helvetica", SIZE), ASCENT + DESCENT)


def assert_near(found: Box, expected: Box, tolerance: float = 2.0) -> None:
    assert found.page == expected.page
    for name in ("x", "y", "width", "height"):
        assert abs(getattr(found, name) - getattr(expected, name)) <= tolerance, (found, expected)


# --- finding ----------------------------------------------------------------------------------


def test_a_phrase_drawn_as_separate_runs_is_found_case_insensitively() -> None:
    pdf = make_pdf(runs(100, 600, "Sign", "ature of the", " Client"))
    expected = drawn_box(1, 100, 600, "Signature of the Client")
    for phrase in (
        "Signature of the Client",
        "SIGNATURE OF THE CLIENT",
        "  signature\nof  the client",
    ):
        (found,) = find_anchors(pdf, phrase)
        assert_near(found, expected)


def test_a_phrase_split_across_a_line_break_is_found_and_covers_both_lines() -> None:
    pdf = make_pdf(lines((100, 500, "Please sign: Signature of"), (100, 486, "the Client here")))
    (found,) = find_anchors(pdf, "signature of the client")
    start = 100 + stringWidth("Please sign: ", "Helvetica", SIZE)
    assert abs(found.x - 100) <= 2  # the second line starts at 100
    assert abs(found.right - (start + stringWidth("Signature of", "Helvetica", SIZE))) <= 2
    assert abs(found.y - (792 - 500 - ASCENT)) <= 2  # top of the first line
    assert abs(found.bottom - (792 - 486 + DESCENT)) <= 2  # bottom of the second line


def test_occurrences_are_counted_across_pages_in_reading_order() -> None:
    pdf = make_pdf(
        lines((72, 700, "Signature of the client:")),
        lines((300, 400, "signature OF the Client"), (72, 200, "Signature of the client")),
    )
    found = find_anchors(pdf, "Signature of the client")
    assert [box.page for box in found] == [1, 2, 2]
    assert_near(found[1], drawn_box(2, 300, 400, "signature OF the Client"))
    assert_near(found[2], drawn_box(2, 72, 200, "Signature of the client"))

    spec = FieldSpec(anchor_text="signature of the client", anchor_index=1, width=100, height=20)
    (second,) = resolve(pdf, [spec])
    anchor = found[1]
    assert second == Resolved(place(anchor, "right", 100, 20, LETTER), True)
    assert second.box.page == 2
    assert (
        abs(second.box.x - (300 + stringWidth("signature OF the Client", "Helvetica", SIZE) + 4))
        <= 2
    )


def test_a_missing_anchor_falls_back_to_the_coordinates() -> None:
    pdf = make_pdf(lines((72, 700, "Nothing to see")), lines((72, 700, "Signature")))
    specs = [
        FieldSpec(page_number=2, x=50, y=60, width=100, height=30, anchor_text="Initials here"),
        FieldSpec(anchor_text="Signature", anchor_index=1),  # only one occurrence
        FieldSpec(page_number=9, x=50, y=60, anchor_text="absent"),  # fallback page clamped
        FieldSpec(page_number=2, x=50, y=60, anchor_text="   "),  # blank: no anchor at all
    ]
    assert resolve(pdf, specs) == [
        Resolved(Box(2, 50, 60, 100, 30), False),
        Resolved(Box(1, 72, 700, 150, 40), False),
        Resolved(Box(2, 50, 60, 150, 40), False),
        Resolved(Box(2, 50, 60, 150, 40), None),
    ]
    assert find_anchors(pdf, "Initials here") == []


def test_coordinate_fields_are_clamped_and_a_missing_page_is_an_error() -> None:
    pdf = make_pdf(lines(), lines(), size=(400, 300))
    (inside, off_right, huge) = resolve(
        pdf,
        [
            FieldSpec(page_number=2, x=10, y=20, width=50, height=10),
            FieldSpec(page_number=1, x=390, y=-5, width=50, height=10),
            FieldSpec(page_number=1, x=0, y=0, width=900, height=10),
        ],
    )
    assert inside == Resolved(Box(2, 10, 20, 50, 10), None)
    assert off_right.box == Box(1, 350, 0, 50, 10)
    assert huge.box == Box(1, 0, 0, 400, 10)
    with pytest.raises(ValueError, match=r"^page 3 does not exist \(the document has 2 pages\)$"):
        resolve(pdf, [FieldSpec(page_number=3)])
    with pytest.raises(ValueError, match="page 0 does not exist"):
        resolve(pdf, [FieldSpec(page_number=0)])


@pytest.mark.parametrize(
    "spec",
    [
        FieldSpec(width=0),
        FieldSpec(height=-1),
        FieldSpec(anchor_text="x", anchor_index=-1),
        FieldSpec(anchor_text="x", anchor_placement="diagonal"),
    ],
)
def test_bad_field_specs_are_value_errors(spec: FieldSpec) -> None:
    with pytest.raises(ValueError):
        resolve(make_pdf(lines()), [spec])


def test_unreadable_input_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a readable PDF"):
        find_anchors(b"%PDF-1.7 garbage", "x")
    assert find_anchors(make_pdf(lines((72, 700, "a b"))), " \n ") == []  # blank: nowhere


# --- placement --------------------------------------------------------------------------------

ANCHOR = Box(1, 100, 200, 80, 14)


@pytest.mark.parametrize(
    ("placement", "expected"),
    [
        ("right", Box(1, 184, 192, 60, 30)),  # 4 pt after the right edge, centred on the line
        ("RIGHT", Box(1, 184, 192, 60, 30)),
        (None, Box(1, 184, 192, 60, 30)),  # blank means right
        ("left", Box(1, 36, 192, 60, 30)),  # ends 4 pt before the phrase
        ("below", Box(1, 100, 218, 60, 30)),  # 4 pt under it, left-aligned
        ("above", Box(1, 100, 166, 60, 30)),  # ends 4 pt above it, left-aligned
    ],
)
def test_placement_is_next_to_the_anchor(placement: str | None, expected: Box) -> None:
    assert place(ANCHOR, placement, 60, 30, LETTER) == expected


@pytest.mark.parametrize(
    ("anchor", "placement", "expected"),
    [
        (Box(1, 500, 300, 100, 12), "right", Box(1, 462, 291, 150, 30)),  # right edge
        (Box(1, 10, 300, 100, 12), "left", Box(1, 0, 291, 150, 30)),  # left edge
        (Box(1, 72, 770, 100, 12), "below", Box(1, 72, 762, 150, 30)),  # bottom edge
        (Box(1, 72, 10, 100, 12), "above", Box(1, 72, 0, 150, 30)),  # top edge
    ],
)
def test_placement_is_clamped_into_the_page(anchor: Box, placement: str, expected: Box) -> None:
    assert place(anchor, placement, 150, 30, LETTER) == expected


def test_a_field_larger_than_the_page_is_shrunk_to_it() -> None:
    assert place(ANCHOR, "below", 1000, 2000, LETTER) == Box(1, 0, 0, 612, 792)


# --- rotated pages and crop boxes -------------------------------------------------------------

MEDIA = (0.0, 0.0, 612.0, 792.0)
CROP = (30.0, 40.0, 580.0, 760.0)
"""A crop box with a non-zero origin: 550 x 720 pt shown of the 612 x 792 media box."""


def _display_to_user(rotation: int) -> tuple[float, ...]:
    """The matrix taking display space (origin bottom left of the page as shown) to user space.

    Reasoning for 90: the viewer turns the page clockwise, so the crop box's left edge becomes
    the top and its bottom edge the left; display x runs along user y from the crop bottom,
    display y (from the bottom) runs along user -x from the crop's right edge."""
    x0, y0, x1, y1 = CROP
    return {
        0: (1, 0, 0, 1, x0, y0),
        90: (0, 1, -1, 0, x1, y0),
        180: (-1, 0, 0, -1, x1, y1),
        270: (0, -1, 1, 0, x0, y1),
    }[rotation]


def rotated_pdf(rotation: int, x: float, top: float, text: str) -> bytes:
    """One page with ``/Rotate rotation`` and the crop box ``CROP``, on which ``text`` reads
    left to right at display (x, baseline ``top`` from the top) — drawn through the inverse of
    the viewer's transformation."""
    display_height = 550 if rotation in (90, 270) else 720

    def draw(pdf: Canvas) -> None:
        pdf.transform(*_display_to_user(rotation))
        pdf.drawString(x, display_height - top, text)

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(draw))))
    page = writer.pages[0]
    page.mediabox = RectangleObject(MEDIA)
    page.cropbox = RectangleObject(CROP)
    page[NameObject("/Rotate")] = NumberObject(rotation)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def ink_box(pdf: bytes, scale: float = 4.0) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the dark pixels of page 1 as PDFium renders it, in
    points of the displayed page — what a viewer, and our page images, show."""
    with previews._PDFIUM:
        document = pdfium.PdfDocument(pdf)
        image = document[0].render(scale=scale).to_pil()
        document.close()
    mask = image.convert("L").point(lambda v: 255 if v < 128 else 0)
    bbox = mask.getbbox()
    assert bbox is not None
    return tuple(v / scale for v in bbox)  # type: ignore[return-value]


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_boxes_on_rotated_and_cropped_pages_are_where_the_viewer_shows_the_phrase(
    rotation: int,
) -> None:
    """A phrase that reads normally on screen, whatever the page's rotation: its box must
    enclose the rendered ink (a line box is a bit taller than the letters) and match its left
    and right edges within 2 pt."""
    pdf = rotated_pdf(rotation, 150, 200, "Signature of the Client")
    displayed = (720.0, 550.0) if rotation in (90, 270) else (550.0, 720.0)
    assert page_sizes(pdf) == [displayed]
    (found,) = find_anchors(pdf, "signature of the client")
    left, top, right, bottom = ink_box(pdf)
    assert abs(found.x - left) <= 2 and abs(found.right - right) <= 2, (found, left, right)
    assert found.y - 1 <= top < bottom <= found.bottom + 1, (found, top, bottom)
    # and where it was drawn: x 150, baseline 200 pt from the top of the displayed page
    assert_near(found, Box(1, 150, 200 - ASCENT, found.width, ASCENT + DESCENT))
    # a field to the right stays inside the landscape (or portrait) page
    (field,) = resolve(pdf, [FieldSpec(anchor_text="Client", width=500, height=30)])
    assert field.anchor_found and field.box.right == displayed[0]


def test_page_sizes_match_pdfium() -> None:
    pdf = rotated_pdf(90, 10, 100, "x")
    with previews._PDFIUM:
        document = pdfium.PdfDocument(pdf)
        expected = [document[0].get_size()]
        document.close()
    assert page_sizes(pdf) == expected == [(720.0, 550.0)]


# --- speed and threads ------------------------------------------------------------------------


def dense_pdf(pages: int) -> bytes:
    words = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "elit", "sed", "do"]

    def page(number: int) -> Draw:
        def draw(pdf: Canvas) -> None:
            for row in range(60):
                line = " ".join(words[(number + row + k) % len(words)] for k in range(14))
                pdf.drawString(40, 760 - 12 * row, line)
            pdf.drawString(40, 20, f"Signature {number}")

        return draw

    return make_pdf(*(page(n) for n in range(1, pages + 1)))


def test_twenty_anchors_on_a_hundred_pages_resolve_quickly() -> None:
    pdf = dense_pdf(100)
    specs = [FieldSpec(anchor_text=f"Signature {n * 5}") for n in range(1, 16)]
    specs += [FieldSpec(anchor_text=f"absent phrase {n}") for n in range(5)]  # read every page
    result, cpu = cpu_seconds(lambda: resolve(pdf, specs))
    print(f"\nresolve: 20 anchors on 100 dense pages in {cpu * 1000:.0f} ms of CPU")
    assert [r.box.page for r in result[:15]] == [n * 5 for n in range(1, 16)]
    assert [r.anchor_found for r in result] == [True] * 15 + [False] * 5
    assert cpu < 1.0, cpu


def test_text_extraction_and_rendering_share_one_lock() -> None:
    assert anchors._PDFIUM is previews._PDFIUM
    pdf = dense_pdf(3)
    errors: list[BaseException] = []

    def work(job: Callable[[], object]) -> None:
        try:
            for _ in range(5):
                job()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    jobs = [lambda: find_anchors(pdf, "Signature 2"), lambda: previews.render_page(pdf, 2, 0.5)]
    threads = [threading.Thread(target=work, args=(job,)) for job in jobs * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Image.open(io.BytesIO(previews.render_page(pdf, 1, 0.5))).size == (306, 396)
