"""stamp(): real PDFs in (made here), a real PDF out, read back with PDFium (text with
positions, rendered pixels) and pypdf (content streams)."""

from __future__ import annotations

import hashlib
import io

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw
from pypdf import PdfReader, PdfWriter
from pypdf.generic import ArrayObject, NameObject, NumberObject, RectangleObject
from reportlab.lib.pagesizes import A4, letter
from reportlab.pdfgen.canvas import Canvas

from bot.documents.anchors import Box, find_anchors, page_sizes
from bot.documents.previews import _PDFIUM
from bot.signing.stamp import Stamp, stamp
from tests.support.timing import cpu_seconds

SCALE = 2.0
ROTATED_CROP = (20.0, 30.0, 575.0, 811.0)
"""Page 2: A4 media box, this crop box, ``/Rotate 90``: shown as 781 x 555 pt landscape."""


def source_pdf(pages: int = 3) -> bytes:
    """Letter, then A4 turned to landscape by ``/Rotate 90`` with an offset crop box, then
    Letter pages; each says "Original page N" near its top-left corner (as drawn)."""
    buf = io.BytesIO()
    pdf = Canvas(buf)
    for number in range(1, pages + 1):
        size = A4 if number == 2 else letter
        pdf.setPageSize(size)
        pdf.setFont("Helvetica", 12)
        pdf.drawString(72, size[1] - 60, f"Original page {number}")
        pdf.showPage()
    pdf.save()
    writer = PdfWriter(clone_from=PdfReader(buf))
    if pages >= 2:
        page = writer.pages[1]
        page.cropbox = RectangleObject(ROTATED_CROP)
        page[NameObject("/Rotate")] = NumberObject(90)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def signature_png() -> bytes:
    """A zig-zag on a transparent 400 x 150 canvas with wide empty margins (they are cropped)."""
    image = Image.new("RGBA", (400, 150), (0, 0, 0, 0))
    ImageDraw.Draw(image).line([(60, 100), (120, 40), (200, 110), (330, 50)], "black", 6)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def render(pdf: bytes, page: int) -> Image.Image:
    """Page ``page`` as displayed, grayscale, ``SCALE`` pixels per point."""
    with _PDFIUM:
        document = pdfium.PdfDocument(pdf)
        image = document[page - 1].render(scale=SCALE).to_pil().convert("L")
        document.close()
    return image


def dark(image: Image.Image, left: float, top: float, right: float, bottom: float) -> bool:
    """Whether any pixel of the region (points, display space) is dark."""
    left, right = (min(max(v * SCALE, 0), image.width) for v in (left, right))
    top, bottom = (min(max(v * SCALE, 0), image.height) for v in (top, bottom))
    if right - left < 1 or bottom - top < 1:
        return False  # off the page (PIL would pad with black)
    region = image.crop((round(left), round(top), round(right), round(bottom)))
    return region.point(lambda v: 255 if v < 160 else 0).getbbox() is not None


def inked_only_inside(image: Image.Image, box: Box, ring: float = 6.0) -> bool:
    """Dark pixels inside ``box`` and none in the ``ring`` around it (1 pt off its edges)."""
    x0, y0, x1, y1 = box.x, box.y, box.right, box.bottom
    strips = [
        (x0 - ring, y0 - ring, x1 + ring, y0 - 1),
        (x0 - ring, y1 + 1, x1 + ring, y1 + ring),
        (x0 - ring, y0 - ring, x0 - 1, y1 + ring),
        (x1 + 1, y0 - ring, x1 + ring, y1 + ring),
    ]
    return dark(image, x0, y0, x1, y1) and not any(dark(image, *strip) for strip in strips)


def inside(found: Box, box: Box, tolerance: float = 2.0) -> bool:
    return (
        found.page == box.page
        and found.x >= box.x - tolerance
        and found.y >= box.y - tolerance
        and found.right <= box.right + tolerance
        and found.bottom <= box.bottom + tolerance
    )


NAME = Stamp(1, Box(1, 72, 100, 200, 24), "text", text="Nguyễn Thị Hồng")
DATE = Stamp(1, Box(1, 72, 140, 100, 18), "text", text="2026-11-28")
CHECKED = Stamp(1, Box(1, 72, 180, 18, 18), "checkbox", checked=True)
UNCHECKED = Stamp(1, Box(1, 120, 180, 18, 18), "checkbox", checked=False)
TYPED = Stamp(1, Box(1, 72, 220, 180, 44), "signature", text="Marie Dubois")
DRAWN = Stamp(2, Box(2, 100, 80, 200, 60), "signature", image_png=signature_png())
MARKUP = Stamp(2, Box(2, 400, 80, 220, 20), "text", text="ACME <b>Corp</b> & Co")
INITIALS = Stamp(2, Box(2, 400, 150, 50, 30), "initials", text="MD")
CHECKED_2 = Stamp(2, Box(2, 100, 200, 20, 20), "checkbox", checked=True)
ALL = [NAME, DATE, CHECKED, UNCHECKED, TYPED, DRAWN, MARKUP, INITIALS, CHECKED_2]


@pytest.fixture(scope="module")
def stamped() -> tuple[bytes, bytes]:
    original = source_pdf()
    return original, stamp(original, ALL)


def test_text_values_are_real_text_inside_their_boxes(stamped: tuple[bytes, bytes]) -> None:
    _, pdf = stamped
    assert page_sizes(pdf)[:2] == [(612, 792), (781, 555)]
    for item in (NAME, DATE, MARKUP, TYPED, INITIALS):
        (found,) = find_anchors(pdf, item.text or "")
        assert inside(found, item.box), (item.text, found, item.box)
    # the same, asked of PDFium in user space: page 1 is unrotated, y flips
    with _PDFIUM:
        document = pdfium.PdfDocument(pdf)
        text = document[0].get_textpage()
        for item in (NAME, DATE):
            box = item.box
            bounded = text.get_text_bounded(box.x, 792 - box.bottom, box.right, 792 - box.y)
            assert bounded.strip() == item.text
        document.close()


def test_text_stays_inside_its_box_on_the_rotated_page(stamped: tuple[bytes, bytes]) -> None:
    image = render(stamped[1], 2)
    for item in (MARKUP, INITIALS, DRAWN, CHECKED_2):
        assert inked_only_inside(image, item.box), item


def test_marks_are_drawn_inside_their_boxes_and_nowhere_else(
    stamped: tuple[bytes, bytes],
) -> None:
    image = render(stamped[1], 1)
    for item in (NAME, DATE, CHECKED, TYPED):
        assert inked_only_inside(image, item.box), item
    box = UNCHECKED.box
    assert not dark(image, box.x - 3, box.y - 3, box.right + 3, box.bottom + 3)


def test_a_checked_box_reads_as_a_check_mark(stamped: tuple[bytes, bytes]) -> None:
    assert [box.page for box in find_anchors(stamped[1], "✓")] == [1, 2]


def test_the_original_content_is_kept_byte_for_byte(stamped: tuple[bytes, bytes]) -> None:
    original, pdf = stamped
    before, after = PdfReader(io.BytesIO(original)), PdfReader(io.BytesIO(pdf))
    # an untouched page keeps its one content stream, not even wrapped
    untouched = after.pages[2]["/Contents"].get_object()
    assert not isinstance(untouched, ArrayObject)
    assert untouched.get_data() == before.pages[2]["/Contents"].get_object().get_data()
    assert render(pdf, 3).tobytes() == render(original, 3).tobytes()
    # a stamped page: q, the original stream unchanged, then Q and the overlay
    for index in (0, 1):
        streams = after.pages[index]["/Contents"].get_object()
        assert isinstance(streams, ArrayObject) and len(streams) == 3
        original_stream = before.pages[index]["/Contents"].get_object().get_data()
        assert streams[1].get_object().get_data() == original_stream
    assert [box.page for box in find_anchors(pdf, "Original page")] == [1, 2, 3]


def test_stamping_twice_keeps_both_rounds_and_distinct_font_names() -> None:
    first = stamp(source_pdf(1), [NAME])
    second = stamp(first, [Stamp(1, Box(1, 72, 300, 200, 24), "text", text="Łukasz Żółć")])
    assert len(find_anchors(second, NAME.text or "")) == 1
    assert len(find_anchors(second, "Łukasz Żółć")) == 1
    page = PdfReader(io.BytesIO(second)).pages[0]
    assert len(page["/Contents"].get_object()) == 5  # q, q, original, Q + first, Q + second
    programs: dict[str, set[str]] = {}
    for name, form in page["/Resources"]["/XObject"].items():
        if not name.startswith("/SignbotStamp"):
            continue
        for font in form.get_object()["/Resources"]["/Font"].values():
            font = font.get_object()
            data = font["/FontDescriptor"]["/FontFile2"].get_object().get_data()
            programs.setdefault(str(font["/BaseFont"]), set()).add(hashlib.sha256(data).hexdigest())
    assert len(programs) == 2 and all(len(p) == 1 for p in programs.values()), programs


@pytest.mark.parametrize(
    "value",
    [
        "x" * 100_000,
        "word " * 20_000,
        "\x00\x07\u202eevil\u202c\x1b[31m",
        "<b>bold</b> & <i>italic</i> <para>",
        "Nguyễn Thị Hồng " * 300,
    ],
)
@pytest.mark.parametrize("kind", ["text", "signature"])
def test_hostile_values_neither_crash_nor_overflow(kind: str, value: str) -> None:
    small, tall = Box(1, 200, 300, 80, 14), Box(1, 200, 400, 90, 60)
    pdf, cpu = cpu_seconds(
        lambda: stamp(
            source_pdf(1), [Stamp(1, small, kind, text=value), Stamp(1, tall, kind, text=value)]
        )
    )
    assert cpu < 2, cpu
    image = render(pdf, 1)
    for box in (small, tall):
        assert inked_only_inside(image, box, ring=40)


def test_nothing_to_draw_leaves_the_document_as_it_was() -> None:
    original = source_pdf(1)
    blanks = [
        Stamp(1, Box(1, 72, 100, 100, 20), "text", text=""),
        Stamp(1, Box(1, 72, 130, 100, 20), "text", text=" \n\x00 "),
        Stamp(1, Box(1, 72, 160, 100, 20), "text"),
        Stamp(1, Box(1, 72, 190, 20, 20), "checkbox", checked=False),
    ]
    assert stamp(original, blanks) is original
    assert stamp(original, []) is original


def test_resources_inherited_from_the_page_tree_are_kept() -> None:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(source_pdf(1))))
    page = writer.pages[0]
    writer.root_object["/Pages"].get_object()[NameObject("/Resources")] = page["/Resources"]
    del page["/Resources"]
    out = io.BytesIO()
    writer.write(out)
    pdf = stamp(out.getvalue(), [NAME])
    assert [box.page for box in find_anchors(pdf, "Original page 1")] == [1]
    assert [box.page for box in find_anchors(pdf, NAME.text or "")] == [1]


def test_a_box_sticking_out_of_the_page_is_drawn_inside_it() -> None:
    pdf = stamp(source_pdf(1), [Stamp(1, Box(1, 560, 770, 100, 40), "checkbox", checked=True)])
    assert inked_only_inside(render(pdf, 1), Box(1, 512, 752, 100, 40))


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (Stamp(4, Box(4, 0, 0, 10, 10), "text", text="x"), "page 4 does not exist"),
        (Stamp(1, Box(2, 0, 0, 10, 10), "text", text="x"), "has a box on page 2"),
        (Stamp(1, Box(1, 0, 0, 10, 10), "stamp", text="x"), "unknown stamp kind"),
        (Stamp(1, Box(1, 0, 0, 0, 10), "text", text="x"), "positive width"),
        (Stamp(1, Box(1, 0, 0, 10, 10), "signature", text=" "), "needs image_png"),
        (Stamp(1, Box(1, 0, 0, 10, 10), "initials", image_png=b"GIF89a"), "not a readable PNG"),
    ],
)
def test_bad_stamps_are_value_errors(item: Stamp, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stamp(source_pdf(3), [item])


def test_a_blank_drawing_is_refused() -> None:
    out = io.BytesIO()
    Image.new("RGBA", (50, 20), (0, 0, 0, 0)).save(out, "PNG")
    with pytest.raises(ValueError, match="blank"):
        stamp(
            source_pdf(1), [Stamp(1, Box(1, 0, 0, 10, 10), "signature", image_png=out.getvalue())]
        )


def test_thirty_stamps_on_a_hundred_pages_are_quick() -> None:
    pdf = source_pdf(100)
    png = signature_png()
    stamps: list[Stamp] = []
    for n in range(30):
        page = 1 + (n * 7) % 100
        box = Box(page, 72 + (n % 3) * 160, 300 + (n % 5) * 60, 150, 40)
        kind = ("text", "checkbox", "signature", "initials", "text")[n % 5]
        stamps.append(
            Stamp(
                page, box, kind, text=f"Value {n}", checked=True, image_png=png if n % 4 else None
            )
        )
    result, cpu = cpu_seconds(lambda: stamp(pdf, stamps))
    print(f"\nstamp: 30 stamps on a 100-page PDF in {cpu * 1000:.0f} ms of CPU")
    assert len(PdfReader(io.BytesIO(result)).pages) == 100
    assert len(find_anchors(result, "Value 0")) == 1
    assert cpu < 1.5, cpu
