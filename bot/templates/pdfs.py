"""A template's PDFs: the same acceptance rules as an upload, plus the facts fields need.

A template's document becomes an envelope's document without passing through
``POST /documents``, so it is checked here by the very same rules (``bot.documents.pdf``:
a PDF by content, readable, not encrypted, at least one page) — at startup, rather than
failing the first envelope made from it. Page sizes and anchor occurrences come from
``bot.documents.anchors``, the code that places the fields of an envelope: a phrase this check
finds is a phrase the placement finds, and sizes are the displayed ones (crop box, rotation)
in which field coordinates are given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.documents import anchors
from bot.documents import pdf as documents_pdf
from bot.errors import SignbotError


@dataclass(frozen=True)
class PdfFacts:
    """What field checks need to know about one document."""

    data: bytes
    page_sizes: tuple[tuple[float, float], ...]
    """(width, height) in points of each page as displayed (crop box, ``/Rotate`` applied)."""

    def count(self, phrases: list[str]) -> dict[str, int]:
        """Occurrences of each anchor phrase; each distinct phrase is looked up once."""
        return {p: len(anchors.find_anchors(self.data, p)) for p in dict.fromkeys(phrases)}


def inspect(path: Path) -> PdfFacts | str:
    """The facts of the PDF at ``path``, or why it cannot be a template's document."""
    if not path.is_file():
        return "file not found"
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if documents_pdf.sniff(data[: documents_pdf.SNIFF_BYTES]) != documents_pdf.PDF:
        return "is not a PDF"
    try:
        # The upload rules; for a PDF nothing is written to the work dir.
        documents_pdf.prepare(path, path.parent)
    except SignbotError as exc:
        return _without_field(exc.message)
    try:
        sizes = tuple(anchors.page_sizes(data))
    except ValueError:
        return "the PDF is damaged and cannot be read"
    return PdfFacts(data, sizes)


def _without_field(message: str) -> str:
    """``file: The PDF is …`` → ``the PDF is …`` (the upload names the form field)."""
    text = message.removeprefix("file: ")
    return text[:1].lower() + text[1:]
