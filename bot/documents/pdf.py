"""Recognise an uploaded file by its content and turn it into the PDF that gets signed.

PDFs are checked (readable, not encrypted, at least one page) and kept as they are; PNG and
JPEG images become a one-page A4 PDF with the image fitted on it. Everything here is
synchronous and CPU-bound: callers run :func:`prepare` in a worker thread.

This module imports no web framework.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import zlib
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageOps
from pypdf import PdfReader

from bot.errors import UnsupportedMediaType, ValidationFailed

PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"

SNIFF_BYTES = 1024
"""How much of the head of a file :func:`sniff` looks at."""

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"

# A4 in PDF points (1/72 inch): 210 mm by 297 mm.
A4_SHORT = 210 / 25.4 * 72
A4_LONG = 297 / 25.4 * 72
PAGE_MARGIN = 10 / 25.4 * 72
"""White border around a converted image: 10 mm."""
IMAGE_DPI = 300
"""Converted images are downsampled to at most this resolution at their printed size."""
JPEG_QUALITY = 90

_DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own default, used if someone disabled the check


def sniff(head: bytes) -> str | None:
    """The media type of a file from its first bytes, or ``None`` when it is none we accept.

    A PDF may carry a little garbage before its ``%PDF-`` header (readers tolerate up to
    1024 bytes of it), so the header is looked for anywhere in the first 1024 bytes.
    """
    if head.startswith(_PNG_MAGIC):
        return PNG
    if head.startswith(_JPEG_MAGIC):
        return JPEG
    if b"%PDF-" in head[:SNIFF_BYTES]:
        return PDF
    return None


@dataclass(frozen=True)
class PreparedPdf:
    mime_type: str
    """The type of the ORIGINAL upload, sniffed from its content."""
    pdf_path: Path
    """The PDF to sign: the upload itself for a PDF, a new file in ``work_dir`` for an image."""
    page_count: int
    converted: bool
    """True when ``pdf_path`` is a new file made from an image (the caller owns and deletes it)."""


def prepare(path: Path, work_dir: Path) -> PreparedPdf:
    """Check the file at ``path`` and return the PDF to sign.

    Raises :class:`UnsupportedMediaType` when the content is neither PDF, PNG nor JPEG, and
    ``ValidationFailed`` (field ``file``) when it is one of those but unusable.
    """
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES)
    mime = sniff(head)
    if mime is None:
        raise UnsupportedMediaType("Only PDF, PNG and JPEG files are accepted")
    if mime == PDF:
        return PreparedPdf(PDF, path, _check_pdf(path), converted=False)
    pdf_path = _image_to_pdf(path, mime, work_dir)
    return PreparedPdf(mime, pdf_path, 1, converted=True)


# --- PDF --------------------------------------------------------------------------------------


def _check_pdf(path: Path) -> int:
    """The page count of a readable, unencrypted PDF with at least one page."""
    try:
        reader = PdfReader(path, strict=False)
        encrypted = reader.is_encrypted
    except Exception as exc:  # pypdf raises many types on hostile input
        raise ValidationFailed.field("file", "The PDF is damaged and cannot be read") from exc
    if encrypted:
        raise ValidationFailed.field(
            "file", "The PDF is password-protected; upload it without encryption"
        )
    try:
        pages = len(reader.pages)  # walks the page tree; /Count is not trusted
        if pages:
            # Touch every page's box so a tree of dangling references is caught here.
            for page in reader.pages:
                box = page.mediabox
                if box.width <= 0 or box.height <= 0:
                    raise ValueError("empty page box")
    except Exception as exc:
        raise ValidationFailed.field("file", "The PDF is damaged and cannot be read") from exc
    if pages == 0:
        raise ValidationFailed.field("file", "The PDF has no pages")
    return pages


# --- images -----------------------------------------------------------------------------------


def _image_to_pdf(path: Path, mime: str, work_dir: Path) -> Path:
    image = _load_image(path, mime)
    page_w, page_h, box = _layout(image.width, image.height)
    if mime == JPEG:
        buf = BytesIO()
        image.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False)
        data, filter_name = buf.getvalue(), "/DCTDecode"
    else:
        data, filter_name = zlib.compress(image.tobytes(), 6), "/FlateDecode"
    colour_space = "/DeviceGray" if image.mode == "L" else "/DeviceRGB"

    work_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="converted-", suffix=".pdf", dir=work_dir)
    out = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_image_pdf(
                f,
                page=(page_w, page_h),
                box=box,
                image=(image.width, image.height, colour_space, filter_name, data),
            )
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return out


def _load_image(path: Path, mime: str) -> Image.Image:
    """Decode the image upright, in mode ``RGB`` or ``L``, at most :data:`IMAGE_DPI` on its
    A4 page; refuse bombs and broken files. The file is closed on return."""
    bad = "The image is damaged and cannot be read"
    max_pixels = Image.MAX_IMAGE_PIXELS or _DEFAULT_MAX_PIXELS
    try:
        image = Image.open(path, formats=["JPEG" if mime == JPEG else "PNG"])
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(max_pixels) from exc
    except Exception as exc:
        raise ValidationFailed.field("file", bad) from exc
    try:
        if image.width <= 0 or image.height <= 0:
            raise ValidationFailed.field("file", bad)
        if image.width * image.height > max_pixels:
            raise _too_many_pixels(max_pixels)
        if mime == JPEG:
            # Let libjpeg decode at a reduced scale when the image is far larger than needed.
            ow, oh = image.width, image.height
            swapped = _exif_orientation(image) in (5, 6, 7, 8)
            if swapped:
                ow, oh = oh, ow
            _, _, box = _layout(ow, oh)
            tw, th = _target_pixels(ow, oh, box[2], box[3])
            image.draft(None, (th, tw) if swapped else (tw, th))
        image.load()
        try:
            result = ImageOps.exif_transpose(image)
        except Exception:  # a broken EXIF block is no reason to refuse the picture
            result = None
        result = _normalise_mode(image if result is None else result)
        _, _, box = _layout(result.width, result.height)
        result = _downsample(result, box[2], box[3])
        # Detach from the opened file (closing it invalidates its pixel data).
        return result.copy() if result is image else result
    except ValidationFailed:
        raise
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(max_pixels) from exc
    except Exception as exc:
        raise ValidationFailed.field("file", bad) from exc
    finally:
        image.close()


def _too_many_pixels(max_pixels: int) -> ValidationFailed:
    return ValidationFailed.field(
        "file", f"The image is too large: at most {max_pixels:,} pixels are accepted"
    )


def _exif_orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112, 1)
        return int(value)
    except Exception:
        return 1


def _normalise_mode(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("RGB", "L"):
        return image
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I;16") or mode == "I":
        return image.convert("I").point(lambda v: v / 257).convert("L")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV, F...


def _layout(width: int, height: int) -> tuple[float, float, tuple[float, float, float, float]]:
    """A4 page (landscape for a landscape image) and the box (x, y, w, h) the image fills."""
    if width > height:
        page_w, page_h = A4_LONG, A4_SHORT
    else:
        page_w, page_h = A4_SHORT, A4_LONG
    avail_w, avail_h = page_w - 2 * PAGE_MARGIN, page_h - 2 * PAGE_MARGIN
    scale = min(avail_w / width, avail_h / height)
    w, h = width * scale, height * scale
    return page_w, page_h, ((page_w - w) / 2, (page_h - h) / 2, w, h)


def _target_pixels(width: int, height: int, box_w: float, box_h: float) -> tuple[int, int]:
    """Pixel size of the image at :data:`IMAGE_DPI` in its box, never larger than it is."""
    max_w = max(1, math.ceil(box_w / 72 * IMAGE_DPI))
    max_h = max(1, math.ceil(box_h / 72 * IMAGE_DPI))
    if width <= max_w and height <= max_h:
        return width, height
    ratio = min(max_w / width, max_h / height)
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def _downsample(image: Image.Image, box_w: float, box_h: float) -> Image.Image:
    size = _target_pixels(image.width, image.height, box_w, box_h)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS)


def _num(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _write_image_pdf(
    f: BinaryIO,
    *,
    page: tuple[float, float],
    box: tuple[float, float, float, float],
    image: tuple[int, int, str, str, bytes],
) -> None:
    """A minimal one-page PDF drawing one image XObject; byte-identical for identical input."""
    px_w, px_h, colour_space, filter_name, data = image
    x, y, w, h = box
    content = f"q {_num(w)} 0 0 {_num(h)} {_num(x)} {_num(y)} cm /Im0 Do Q\n".encode("ascii")
    digest = hashlib.sha256(data + content).hexdigest()[:32].upper()

    objects: list[list[bytes]] = [
        [b"<< /Type /Catalog /Pages 2 0 R >>"],
        [b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"],
        [
            (
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_num(page[0])} {_num(page[1])}]"
                " /Resources << /XObject << /Im0 4 0 R >> /ProcSet [/PDF /ImageB /ImageC] >>"
                " /Contents 5 0 R >>"
            ).encode("ascii")
        ],
        [
            (
                f"<< /Type /XObject /Subtype /Image /Width {px_w} /Height {px_h}"
                f" /ColorSpace {colour_space} /BitsPerComponent 8 /Filter {filter_name}"
                f" /Length {len(data)} >>\nstream\n"
            ).encode("ascii"),
            data,
            b"\nendstream",
        ],
        [f"<< /Length {len(content)} >>\nstream\n".encode("ascii"), content, b"endstream"],
        [b"<< /Producer (signbot) >>"],
    ]
    offsets: list[int] = []
    pos = 0

    def emit(chunk: bytes) -> None:
        nonlocal pos
        f.write(chunk)
        pos += len(chunk)

    emit(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    for number, parts in enumerate(objects, start=1):
        offsets.append(pos)
        emit(f"{number} 0 obj\n".encode("ascii"))
        for part in parts:
            emit(part)
        emit(b"\nendobj\n")
    xref_at = pos
    emit(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode("ascii"))
    for offset in offsets:
        emit(f"{offset:010d} 00000 n \n".encode("ascii"))
    emit(
        (
            f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R"
            f" /ID [<{digest}> <{digest}>] >>\nstartxref\n{xref_at}\n%%EOF\n"
        ).encode("ascii")
    )
