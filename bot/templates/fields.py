"""A template's fields: read with the defaults of their type, then checked against the PDFs.

Split from the loader because fields are where the document matters: each field's page must
exist, a box given by coordinates must fit on its page, and every anchor must occur in its
document at least ``index + 1`` times — with the finder the envelope's placement uses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from yaml.nodes import Node

from bot.templates import spec
from bot.templates.nodes import Reader
from bot.templates.pdfs import PdfFacts
from bot.templates.spec import TemplateField

FIELD_KEYS = (
    "type",
    "anchor",
    "placement",
    "index",
    "document",
    "page",
    "x",
    "y",
    "width",
    "height",
    "required",
    "label",
    "options",
)
_MAX_POINTS = 14400.0
"""The largest page a PDF may have, and the API's own bound."""


@dataclass
class FieldDraft:
    """A field as read, before its document and anchor are checked."""

    field: TemplateField
    node: Node
    where: str
    members: dict[str, Node]
    """The field's members as written, to point errors at the right line."""
    positioned: bool
    """x and y were given: the box itself must fit on its page."""


def read_field(r: Reader, node: Node, where: str, role_index: int) -> FieldDraft | None:
    """One member of a role's ``fields`` list, with the defaults of its type."""
    m = r.mapping(node, where, FIELD_KEYS)
    if m is None:
        return None
    kind = "SIGNATURE"
    if "type" in m:
        kind = r.choice(m["type"], f"{where}.type", spec.FIELD_TYPES) or kind
    width, height = spec.DEFAULT_SIZE[kind]

    def num(key: str, default: float, *, above: bool = False) -> float:
        if key not in m:
            return default
        got = r.number(m[key], f"{where}.{key}", lo=0.0, hi=_MAX_POINTS, above=above)
        return default if got is None else got

    anchor = r.member_text(m, where, "anchor", 200) if "anchor" in m else None
    placement = "right"
    if "placement" in m:
        placement = r.choice(m["placement"], f"{where}.placement", spec.PLACEMENTS) or "right"
    index = 0
    if "index" in m:
        index = r.integer(m["index"], f"{where}.index", lo=0, hi=1000) or 0
    for key in ("placement", "index"):
        if key in m and "anchor" not in m:
            r.error(m[key], f"{where}.{key}", "only means something with an anchor")
    page = spec.DEFAULT_PAGE
    if "page" in m:
        page = r.integer(m["page"], f"{where}.page", lo=1, hi=10000) or page
    positioned = "x" in m and "y" in m
    if anchor is None and not positioned and "anchor" not in m:
        r.error(node, where, "give an anchor, or x and y (points, y from the top)")
    required = True
    if "required" in m:
        required = r.boolean(m["required"], f"{where}.required") is not False
    label = r.member_text(m, where, "label", 200) if "label" in m else None
    options = _options(r, m.get("options"), where, kind)
    if kind in spec.NEEDS_OPTIONS and not options and "options" not in m:
        r.error(node, where, f"a {kind} field needs options")
    field = TemplateField(
        role_index=role_index,
        field_type=kind,
        page_number=page,
        x=num("x", spec.DEFAULT_X),
        y=num("y", spec.DEFAULT_Y),
        width=num("width", width, above=True),
        height=num("height", height, above=True),
        anchor_text=anchor,
        anchor_placement=placement,
        anchor_index=index,
        required=required,
        label=label,
        options=options,
    )
    return FieldDraft(field, node, where, m, positioned)


def _options(r: Reader, node: Node | None, where: str, kind: str) -> tuple[str, ...]:
    if node is None:
        return ()
    here = f"{where}.options"
    if kind not in spec.NEEDS_OPTIONS:
        r.error(node, here, "only DROPDOWN and RADIO_GROUP fields take options")
        return ()
    items = r.sequence(node, here)
    if items is None:
        return ()
    if not 1 <= len(items) <= spec.MAX_OPTIONS:
        r.error(node, here, f"list 1 to {spec.MAX_OPTIONS} choices")
    values: list[str] = []
    for k, item in enumerate(items):
        value = r.text(item, f"{here}[{k}]", max_length=200)
        if value is None:
            r.error(item, f"{here}[{k}]", "must not be empty")
        elif value in values:
            r.error(item, f"{here}[{k}]", f"{value!r} is listed twice")
        else:
            values.append(value)
    return tuple(values)


def check_fields(
    r: Reader, drafts: list[FieldDraft], documents: list[tuple[Path, PdfFacts | None]]
) -> tuple[TemplateField, ...]:
    """Resolve each field's document, then check its page, box and anchor against it."""
    placed: list[tuple[FieldDraft, int]] = []
    names = {p.name: i for i, (p, _) in enumerate(documents)}
    for draft in drafts:
        index = 0
        if "document" in draft.members:
            found = _document_index(r, draft, names, len(documents))
            if found is None:
                continue
            index = found
        placed.append((draft, index))
    wanted: dict[int, list[str]] = {}
    for draft, index in placed:
        if draft.field.anchor_text and index < len(documents):
            wanted.setdefault(index, []).append(draft.field.anchor_text)
    counts = {
        i: facts.count(phrases)
        for i, phrases in wanted.items()
        if (facts := documents[i][1]) is not None
    }
    out: list[TemplateField] = []
    for draft, index in placed:
        field = draft.field
        facts = documents[index][1] if index < len(documents) else None
        out.append(_with_document(field, index))
        if facts is None:
            continue  # the document's own error was reported
        _check_page(r, draft, facts, documents[index][0].name)
        if field.anchor_text:
            seen = counts[index][field.anchor_text]
            name = documents[index][0].name
            if seen == 0:
                r.error(
                    draft.members["anchor"],
                    f"{draft.where}.anchor",
                    f"{field.anchor_text!r} is not in {name}",
                )
            elif field.anchor_index >= seen:
                at = draft.members.get("index", draft.members["anchor"])
                r.error(
                    at,
                    f"{draft.where}.index",
                    f"{field.anchor_index} is past the last occurrence of "
                    f"{field.anchor_text!r} in {name} (found {seen}, counting from 0)",
                )
    return tuple(out)


def _document_index(r: Reader, draft: FieldDraft, names: dict[str, int], count: int) -> int | None:
    node, where = draft.members["document"], f"{draft.where}.document"
    value = r.plain(node)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < max(count, 1):
        return value
    if isinstance(value, str) and value in names:
        return names[value]
    known = ", ".join(names) or "none"
    r.error(node, where, f"must be a document's index from 0 or file name ({known})")
    return None


def _check_page(r: Reader, draft: FieldDraft, facts: PdfFacts, name: str) -> None:
    field = draft.field
    pages = len(facts.page_sizes)
    if field.page_number > pages:
        at = draft.members.get("page", draft.node)
        r.error(at, f"{draft.where}.page", f"{name} has {pages} page{'s' if pages > 1 else ''}")
        return
    if not draft.positioned:
        return
    width, height = facts.page_sizes[field.page_number - 1]
    if field.x + field.width > width or field.y + field.height > height:
        r.error(
            draft.node,
            draft.where,
            f"the box ({field.x:g}, {field.y:g}, {field.width:g} by "
            f"{field.height:g}) overflows page {field.page_number} "
            f"({width:g} by {height:g} points)",
        )


def _with_document(field: TemplateField, index: int) -> TemplateField:
    return field if index == field.document_index else replace(field, document_index=index)
