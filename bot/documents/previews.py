"""Page images for the signer page, rendered with pypdfium2 and cached in storage.

A page is rendered once (at ``SCALE``, sharp on a phone's high-density screen yet light) and
encoded as WebP; later views read the cached object. Text pages (most contracts) are encoded
losslessly, which is both smaller and quicker there (~37 KB and ~10 ms a page, against ~180 KB
and ~21 ms lossy); a page that comes out large that way (a scan, a photo) is encoded lossy.
Concurrent requests for the same page wait for one render.
PDFium is not thread-safe, so renders run one at a time in a worker thread, off the event
loop. A cached image is named by the document's hash: documents never change under an id,
and a re-upload gets a new hash.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading

import pypdfium2 as pdfium
from PIL import Image

from bot.documents.storage import Storage, StorageUnavailable

log = logging.getLogger("signbot.storage")

SCALE = 1.5
"""1.5 x 72 dpi: an A4 page is 893 x 1263 px."""
QUALITY = 80
LOSSLESS_LIMIT = 250_000
"""Bytes above which a lossless page is re-encoded lossy (scans and photos)."""
_PDFIUM = threading.Lock()


def cache_key(pdf_sha256: str, page: int) -> str:
    return f"previews/{pdf_sha256}/{page}-{int(SCALE * 100)}.webp"


MAX_PIXELS = 4_000_000
MAX_SIDE = 4000


def bounded_scale(width: float, height: float, scale: float) -> float:
    """``scale``, lowered for a huge page so its bitmap stays within ``MAX_PIXELS`` and
    ``MAX_SIDE``: a 14,400-point page at 1.5x would take gigabytes to render."""
    width, height = max(width, 1.0), max(height, 1.0)
    by_area = (MAX_PIXELS / (width * height)) ** 0.5
    by_side = MAX_SIDE / max(width, height)
    return min(scale, by_area, by_side)


def render_page(pdf: bytes, page: int, scale: float = SCALE) -> bytes:
    """Page ``page`` (1-based) of ``pdf`` as WebP bytes; CPU-bound, call it in a thread."""
    with _PDFIUM:
        document = pdfium.PdfDocument(pdf)
        try:
            if not 1 <= page <= len(document):
                raise IndexError(f"page {page} is out of range")
            target = document[page - 1]
            scale = bounded_scale(target.get_width(), target.get_height(), scale)
            bitmap = target.render(scale=scale, may_draw_forms=True)
            image = bitmap.to_pil()
        finally:
            document.close()
    return encode(image)


def encode(image: Image.Image) -> bytes:
    """WebP, lossless when that stays small (text), lossy otherwise (scans, photos)."""
    rgb = image.convert("RGB")
    out = io.BytesIO()
    rgb.save(out, "WEBP", lossless=True, method=0)
    if out.tell() <= LOSSLESS_LIMIT:
        return out.getvalue()
    out = io.BytesIO()
    rgb.save(out, "WEBP", quality=QUALITY, method=0)
    return out.getvalue()


class Previews:
    """Cached page images of stored PDFs."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._inflight: dict[str, asyncio.Future[bytes]] = {}

    async def page(self, pdf_key: str, pdf_sha256: str, page: int) -> bytes:
        key = cache_key(pdf_sha256, page)
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        try:
            return await self.storage.read_bytes(key)
        except FileNotFoundError:
            pass
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            pdf = await self.storage.read_bytes(pdf_key)
            image = await asyncio.to_thread(render_page, pdf, page)
            try:
                await self.storage.put_bytes(key, image)
            except StorageUnavailable as exc:  # only the cache is lost: the image is here
                log.warning("page image not cached: %s", exc)
            future.set_result(image)
            return image
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._inflight[key]
