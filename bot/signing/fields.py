"""A signer's fields on the page: what the form shows and what it accepts.

Pure functions over field rows: checking submitted values (required fields, options that
exist, lengths), the initials a signer is asked for, and the boxes the page overlays on its
images. The form names each input ``field_<id>``; DATE_SIGNED is filled by us (the signing
date), SIGNATURE fields take the signature given once for the whole document.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.signing import drawing

MAX_TEXT = 500
MAX_INITIALS = 8
FILLED = frozenset({"TEXT", "CHECKBOX", "DROPDOWN", "RADIO_GROUP"})
"""Types whose value the signer enters in the form."""


class FieldRow(Protocol):
    id: str
    recipient_id: str
    field_type: str
    required: bool
    label: str | None
    options: list[str]
    document_index: int
    page_number: int
    x: float
    y: float
    width: float
    height: float
    placed_page: int | None
    placed_x: float | None
    placed_y: float | None
    placed_width: float | None
    placed_height: float | None
    page_width: float | None
    page_height: float | None


def input_name(field: FieldRow) -> str:
    return f"field_{field.id}"


def mine(fields: Iterable[FieldRow], recipient_id: str) -> list[FieldRow]:
    """This recipient's fields in reading order: document, page, top to bottom, left to right."""
    own = [f for f in fields if f.recipient_id == recipient_id]
    return sorted(own, key=lambda f: (f.document_index, *_position(f)))


def _position(field: FieldRow) -> tuple[int, float, float]:
    if field.placed_page is not None:
        return field.placed_page, field.placed_y or 0.0, field.placed_x or 0.0
    return field.page_number, field.y, field.x


def asks_initials(fields: Sequence[FieldRow], initials_on_every_page: bool) -> bool:
    return initials_on_every_page or any(f.field_type == "INITIALS" for f in fields)


def default_initials(name: str) -> str:
    """``Nguyễn Thị Hồng`` → ``NTH``: what the initials input starts with."""
    words = drawing.clean(name).split()
    return "".join(part[0] for part in words if part[:1].isalpha()).upper()[:MAX_INITIALS]


def check(
    fields: Sequence[FieldRow],
    form: Mapping[str, str],
    *,
    initials: str,
    wants_initials: bool,
) -> tuple[dict[str, str], str | None, list[tuple[str, str]]]:
    """(values by field id, cleaned initials, errors as (input name, catalog code))."""
    values: dict[str, str] = {}
    errors: list[tuple[str, str]] = []
    for field in fields:
        if field.field_type not in FILLED:
            continue
        key = input_name(field)
        raw = drawing.clean(form.get(key) or "")
        if field.field_type == "CHECKBOX":
            checked = raw == "yes"
            if field.required and not checked:
                errors.append((key, "required"))
            values[field.id] = "true" if checked else "false"
            continue
        if field.field_type in ("DROPDOWN", "RADIO_GROUP") and raw and raw not in field.options:
            errors.append((key, "invalid"))
            continue
        if len(raw) > MAX_TEXT:
            errors.append((key, "too_long"))
            continue
        if field.required and not raw:
            errors.append((key, "required"))
            continue
        values[field.id] = raw
    cleaned: str | None = None
    if wants_initials:
        cleaned = "".join(drawing.clean(initials).split())[: MAX_INITIALS + 1]
        if not cleaned:
            errors.append(("initials", "required"))
        elif len(cleaned) > MAX_INITIALS:
            errors.append(("initials", "too_long"))
    return values, cleaned, errors


@dataclass(frozen=True)
class Overlay:
    """One field drawn over a page image (an SVG rect in the page's own points)."""

    field_id: str
    input: str
    field_type: str
    label: str
    required: bool
    x: float
    y: float
    width: float
    height: float


def overlays(fields: Sequence[FieldRow], document_index: int, page: int) -> list[Overlay]:
    out = []
    for field in fields:
        if field.document_index != document_index or field.placed_page != page:
            continue
        out.append(
            Overlay(
                field.id,
                input_name(field),
                field.field_type,
                field.label or "",
                field.required,
                field.placed_x or 0.0,
                field.placed_y or 0.0,
                field.placed_width or field.width,
                field.placed_height or field.height,
            )
        )
    return out


def page_size(fields: Sequence[FieldRow], document_index: int, page: int) -> tuple[float, float]:
    """The page's size in points, known from any field placed on it (A4 otherwise)."""
    for field in fields:
        same_page = field.document_index == document_index and field.placed_page == page
        if same_page and field.page_width and field.page_height:
            return field.page_width, field.page_height
    return 595.0, 842.0


def echo(form: Mapping[str, Any], fields: Sequence[FieldRow]) -> dict[str, str]:
    """What the signer typed, to show again beside an error (never lose input)."""
    return {input_name(f): str(form.get(input_name(f)) or "")[:MAX_TEXT] for f in fields}
