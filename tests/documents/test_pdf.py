"""Content sniffing, PDF checks and image-to-PDF conversion (bot.documents.pdf)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader, PdfWriter

from bot.documents.pdf import A4_LONG, A4_SHORT, PreparedPdf, prepare, sniff
from bot.errors import UnsupportedMediaType, ValidationFailed


def make_pdf(pages: int = 1, *, user_password: str | None = None) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=612, height=792)
    if user_password is not None:
        writer.encrypt(user_password=user_password, owner_password="owner-secret")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def image_bytes(image: Image.Image, fmt: str, **save: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **save)
    return buf.getvalue()


def write(tmp_path: Path, data: bytes, name: str = "upload.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def only_page(prepared: PreparedPdf):
    reader = PdfReader(prepared.pdf_path, strict=True)
    assert len(reader.pages) == 1
    return reader.pages[0]


def page_size(page) -> tuple[float, float]:
    return float(page.mediabox.width), float(page.mediabox.height)


def the_image(page) -> Image.Image:
    images = page.images
    assert len(images) == 1
    return images[0].image


# --- sniff ------------------------------------------------------------------------------------


def test_sniff_recognises_the_three_types_by_their_magic() -> None:
    assert sniff(b"%PDF-1.7\n...") == "application/pdf"
    assert sniff(b"\x89PNG\r\n\x1a\n\x00\x00") == "image/png"
    assert sniff(b"\xff\xd8\xff\xe0\x00\x10JFIF") == "image/jpeg"


def test_sniff_finds_a_pdf_header_after_some_junk_but_not_after_1024_bytes() -> None:
    assert sniff(b"\x00" * 1000 + b"%PDF-1.4") == "application/pdf"
    assert sniff(b"\x00" * 1024 + b"%PDF-1.4") is None


@pytest.mark.parametrize(
    "head", [b"", b"GIF89a", b"PK\x03\x04", b"<html>", b"\x89PNG", b"%PDF", b"hello %PD"]
)
def test_sniff_returns_none_for_anything_else(head: bytes) -> None:
    assert sniff(head) is None


# --- PDFs -------------------------------------------------------------------------------------


def test_a_pdf_is_kept_as_is_and_its_pages_are_counted(tmp_path: Path) -> None:
    path = write(tmp_path, make_pdf(3), "named-like-a.png")
    prepared = prepare(path, tmp_path / "work")
    assert prepared == PreparedPdf("application/pdf", path, 3, converted=False)
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())


@pytest.mark.parametrize("user_password", ["secret", ""])
def test_an_encrypted_pdf_is_refused(tmp_path: Path, user_password: str) -> None:
    path = write(tmp_path, make_pdf(2, user_password=user_password))
    with pytest.raises(ValidationFailed) as err:
        prepare(path, tmp_path)
    assert err.value.errors[0].field == "file"
    assert "password-protected" in err.value.errors[0].message


def test_a_pdf_without_pages_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, make_pdf(0))
    with pytest.raises(ValidationFailed, match="no pages"):
        prepare(path, tmp_path)


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9])
def test_a_truncated_pdf_is_a_validation_error(tmp_path: Path, keep: float) -> None:
    data = make_pdf(3)
    path = write(tmp_path, data[: int(len(data) * keep)])
    with pytest.raises(ValidationFailed) as err:
        prepare(path, tmp_path)
    assert err.value.errors[0].field == "file"


def test_a_pdf_header_on_garbage_is_a_validation_error(tmp_path: Path) -> None:
    path = write(tmp_path, b"%PDF-1.7\n" + bytes(range(256)) * 40)
    with pytest.raises(ValidationFailed):
        prepare(path, tmp_path)


def test_a_pdf_whose_page_tree_points_nowhere_is_refused(tmp_path: Path) -> None:
    data = make_pdf(2).replace(b"/Pages 2 0 R", b"/Pages 9 0 R")
    assert b"/Pages 9 0 R" in data
    path = write(tmp_path, data)
    with pytest.raises(ValidationFailed):
        prepare(path, tmp_path)


def test_pages_are_counted_by_walking_the_tree_not_by_trusting_count(tmp_path: Path) -> None:
    data = make_pdf(2).replace(b"/Count 2", b"/Count 7")
    assert b"/Count 7" in data
    assert prepare(write(tmp_path, data), tmp_path).page_count == 2


@pytest.mark.parametrize(
    "data", [b"", b"hello world", b"GIF89a" + b"\x00" * 100, b"PK\x03\x04zipzipzip"]
)
def test_other_content_is_unsupported(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path, data, "looks-like.pdf")
    with pytest.raises(UnsupportedMediaType, match="Only PDF, PNG and JPEG"):
        prepare(path, tmp_path)


# --- images -----------------------------------------------------------------------------------


def test_a_png_with_alpha_becomes_one_a4_page_on_white(tmp_path: Path) -> None:
    image = Image.new("RGBA", (300, 400), (0, 0, 0, 0))  # fully transparent...
    image.paste((200, 0, 0, 255), (0, 0, 300, 200))  # ...but the top half is opaque red
    src = write(tmp_path, image_bytes(image, "PNG"), "picture.pdf")
    work = tmp_path / "work"

    prepared = prepare(src, work)

    assert prepared.mime_type == "image/png"
    assert prepared.converted and prepared.page_count == 1
    assert prepared.pdf_path != src and prepared.pdf_path.parent == work
    assert src.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the original is untouched
    page = only_page(prepared)
    assert page_size(page) == pytest.approx((A4_SHORT, A4_LONG), abs=0.01)
    drawn = the_image(page).convert("RGB")
    assert drawn.size == (300, 400)
    assert drawn.getpixel((150, 50)) == (200, 0, 0)
    assert drawn.getpixel((150, 350)) == (255, 255, 255)  # transparency flattened on white


def test_a_jpeg_honours_its_exif_orientation(tmp_path: Path) -> None:
    # Stored landscape, left half red and right half blue; orientation 6 means "rotate 90°
    # clockwise to display", so it shows portrait with red on top.
    raw = Image.new("RGB", (400, 200), (0, 0, 255))
    raw.paste((255, 0, 0), (0, 0, 200, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    src = write(tmp_path, image_bytes(raw, "JPEG", quality=95, exif=exif.tobytes()))

    prepared = prepare(src, tmp_path)

    assert prepared.mime_type == "image/jpeg" and prepared.converted
    page = only_page(prepared)
    assert page_size(page) == pytest.approx((A4_SHORT, A4_LONG), abs=0.01)  # portrait
    drawn = the_image(page).convert("RGB")
    assert drawn.size == (200, 400)
    top, bottom = drawn.getpixel((100, 50)), drawn.getpixel((100, 350))
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60


def test_a_landscape_image_gets_a_landscape_page_and_keeps_its_aspect_ratio(
    tmp_path: Path,
) -> None:
    src = write(tmp_path, image_bytes(Image.new("RGB", (1000, 250), "green"), "PNG"))
    page = only_page(prepare(src, tmp_path))
    assert page_size(page) == pytest.approx((A4_LONG, A4_SHORT), abs=0.01)
    content = page.get_contents().get_data().decode()
    w, _, _, h, x, y = (float(v) for v in content.split()[1:7])
    assert w / h == pytest.approx(4.0, rel=1e-3)
    assert x > 0 and y > 0 and x + w < A4_LONG and y + h < A4_SHORT
    assert x == pytest.approx((A4_LONG - w) / 2, abs=0.01)


@pytest.mark.parametrize(
    ("mode", "fmt", "colour"),
    [
        ("P", "PNG", "/DeviceRGB"),
        ("L", "PNG", "/DeviceGray"),
        ("1", "PNG", "/DeviceGray"),
        ("LA", "PNG", "/DeviceRGB"),
        ("I;16", "PNG", "/DeviceGray"),
        ("CMYK", "JPEG", "/DeviceRGB"),
        ("L", "JPEG", "/DeviceGray"),
    ],
)
def test_other_image_modes_are_converted(tmp_path: Path, mode: str, fmt: str, colour: str) -> None:
    image = Image.new("RGB", (64, 48), (10, 120, 240)).convert(mode)
    if mode == "I;16":
        image = Image.new("I;16", (64, 48), 40000)
    src = write(tmp_path, image_bytes(image, fmt))
    page = only_page(prepare(src, tmp_path))
    xobject = page["/Resources"]["/XObject"]["/Im0"]
    assert xobject["/ColorSpace"] == colour
    assert (xobject["/Width"], xobject["/Height"]) == (64, 48)
    if mode == "I;16":
        assert the_image(page).getpixel((1, 1)) == 155  # 40000/65535 of full scale


def test_a_transparent_palette_png_is_flattened_on_white(tmp_path: Path) -> None:
    image = Image.new("P", (20, 20), 0)
    image.putpalette([0, 0, 0, 255, 0, 0])
    image.paste(1, (0, 0, 10, 20))
    src = write(tmp_path, image_bytes(image, "PNG", transparency=0))
    drawn = the_image(only_page(prepare(src, tmp_path))).convert("RGB")
    assert drawn.getpixel((2, 2)) == (255, 0, 0)
    assert drawn.getpixel((15, 2)) == (255, 255, 255)


def test_a_huge_image_is_downsampled_to_300_dpi_on_the_page(tmp_path: Path) -> None:
    src = write(tmp_path, image_bytes(Image.new("L", (3000, 4000), 128), "PNG"))
    xobject = only_page(prepare(src, tmp_path))["/Resources"]["/XObject"]["/Im0"]
    width, height = xobject["/Width"], xobject["/Height"]
    assert width < 3000 and height <= round((A4_LONG - 2 * 28.35) / 72 * 300) + 1
    assert width / height == pytest.approx(0.75, rel=0.01)


def test_conversion_is_deterministic(tmp_path: Path) -> None:
    image = Image.new("RGB", (120, 90), (1, 2, 3))
    image.paste((250, 200, 100), (10, 10, 60, 60))
    for fmt in ("PNG", "JPEG"):
        src = write(tmp_path, image_bytes(image, fmt), f"src.{fmt}")
        first = prepare(src, tmp_path / "a").pdf_path.read_bytes()
        second = prepare(src, tmp_path / "b").pdf_path.read_bytes()
        assert first == second


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bombs_are_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)
    for size in ((80, 80), (200, 200)):  # above the limit, and above twice the limit
        src = write(tmp_path, image_bytes(Image.new("L", size), "PNG"))
        with pytest.raises(ValidationFailed, match="too large"):
            prepare(src, tmp_path)
        src = write(tmp_path, image_bytes(Image.new("L", size), "JPEG"))
        with pytest.raises(ValidationFailed, match="too large"):
            prepare(src, tmp_path)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_truncated_image_is_a_validation_error(tmp_path: Path, fmt: str) -> None:
    noisy = Image.effect_noise((200, 200), 64).convert("RGB")
    data = image_bytes(noisy, fmt)
    src = write(tmp_path, data[: len(data) // 2])
    with pytest.raises(ValidationFailed) as err:
        prepare(src, tmp_path)
    assert err.value.errors[0].field == "file"
    assert list(tmp_path.glob("converted-*")) == []


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 50,
        b"\xff\xd8\xff" + b"garbage" * 10,
        b"\xff\xd8\xff\xe0",
    ],
)
def test_an_image_that_cannot_be_decoded_is_a_validation_error(tmp_path: Path, data: bytes) -> None:
    src = write(tmp_path, data)
    with pytest.raises(ValidationFailed):
        prepare(src, tmp_path)
