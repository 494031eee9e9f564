"""The audit trail as a PDF: the envelope's evidence on paper, and its log inside the file.

The printed part is for people: who was asked to sign what (documents with their hashes
before and after), how each recipient was authenticated, then every event of the log — time,
event, actor, IP, user agent, details and both hashes — and the consent text they agreed to.
Nothing is left out or shortened: the paper copy must stand on its own.

The machine part is for ``signbot verify``: the exact log (``chain.document``) is embedded as
``audit-log.json``, so the chain can be re-checked from the PDF alone. The hash chain is also
checked while rendering and its state printed, so a reader sees at once whether it holds.

Pure: the same trail gives the same bytes (``generated_at`` is the only clock). The result is a
plain unsigned PDF for ``seal.py`` to seal like the signed document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from typing import Any

from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject, TextStringObject
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    Paragraph,
    Spacer,
    Table,
)
from reportlab.platypus.flowables import SetTopFlowables
from reportlab.platypus.tables import TableStyle

from bot.signing import chain, drawing
from bot.signing.drawing import RULE, esc, styles, utc_text

MARGIN = drawing.PAGE_MARGIN
_ZEBRA = colors.HexColor("#F9FAFB")


@dataclass(frozen=True)
class AuditDocument:
    name: str
    pages: int
    sha256_before: str
    """Hex SHA-256 of the upload (of the PDF made from it, for an image upload)."""
    sha256_after: str | None
    """``ComposedDocument.sha256_after``; ``None`` when the envelope never completed."""


@dataclass(frozen=True)
class AuditRecipient:
    name: str
    email: str
    role: str
    authentication: str | None
    """``None``/``NONE`` (the email link alone) or ``EMAIL_OTP``."""
    status: str


@dataclass(frozen=True)
class AuditTrail:
    envelope_id: str
    subject: str
    account_name: str
    environment: str
    """``"test"`` (sandbox key: marked TEST on every page) or ``"live"``."""
    status: str
    created_at: datetime
    finished_at: datetime | None
    documents: tuple[AuditDocument, ...]
    recipients: tuple[AuditRecipient, ...]
    entries: tuple[dict[str, Any], ...]
    """The log in ``chain``'s format (seq, at, event, actor, ip, userAgent, details,
    prevHash, hash), in order; printed whole and embedded as ``audit-log.json``."""
    consent_version: str
    consent_text: str
    """The electronic-signature consent recipients agreed to, printed in full."""
    signed_document_sha256: str | None
    """Hex SHA-256 of the sealed signed PDF, when the envelope completed."""
    generated_at: datetime


def render_audit_trail(trail: AuditTrail) -> bytes:
    """The audit-trail PDF: the printed report with ``audit-log.json`` embedded in it."""
    drawing.register_fonts()
    writer = PdfWriter(clone_from=PdfReader(BytesIO(_report(trail))))
    attachment = writer.add_attachment(
        chain.ATTACHMENT_NAME, chain.document(trail.envelope_id, trail.entries)
    )
    attachment.subtype = NameObject("/application#2Fjson")
    attachment.description = TextStringObject(f"Hash-chained event log ({chain.FORMAT})")
    writer.add_metadata(drawing.metadata(f"Audit trail — {trail.envelope_id}", trail.generated_at))
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def _report(trail: AuditTrail) -> bytes:
    buffer = BytesIO()
    template = drawing.a4_template(buffer, "Audit trail")
    width = template.width - 12  # the frame pads its flowables by 6 pt on each side
    test = trail.environment.lower() == "test"
    story = _header(trail, width, test)
    story += _documents(trail, width)
    story += _recipients(trail, width)
    story += _events(trail, width)
    story += _consent(trail)
    left = f"Audit trail · Envelope {trail.envelope_id}"

    def decorate(canvas: Canvas, number: int, total: int) -> None:
        if test:
            drawing.draw_test_mark(canvas, *A4, alpha=0.14)  # lighter over dense tables
        drawing.footer(canvas, A4[0], left, f"Page {number} of {total}", test=test, margin=MARGIN)

    template.build(story, canvasmaker=drawing.deferred_canvas(decorate))
    return buffer.getvalue()


# --- sections ---------------------------------------------------------------------------------


def _header(trail: AuditTrail, width: float, test: bool) -> list[Flowable]:
    s = styles()
    story: list[Flowable] = [
        Paragraph("Audit trail", s["title"]),
        Paragraph(f"Envelope {esc(trail.envelope_id)}", s["subtitle"]),
        Spacer(1, 8),
    ]
    if test:
        story += [
            Paragraph("TEST (sandbox) — this envelope is not legally binding.", s["banner"]),
            Spacer(1, 6),
        ]
    environment = "<font color='#C81E1E'><b>TEST (sandbox)</b></font>" if test else "Live"
    finished = utc_text(trail.finished_at) if trail.finished_at else "—"
    verdict = chain.verify_chain(trail.entries)
    chain_state = (
        f"Intact ({verdict.entries} entries)"
        if verdict.ok
        else f"<font color='#C81E1E'><b>Broken</b></font>: {esc(verdict.problem)}"
    )
    half, label = width / 2, 62.0
    status = drawing.bounded(drawing.humanize(trail.status), half - label, 2, 8.5)
    rows = [
        ("Envelope ID", drawing.bounded(trail.envelope_id, half - label, 2, 8.5), "Status", status),
        (
            "Account",
            drawing.bounded(trail.account_name, half - label, 3, 8.5),
            "Environment",
            environment,
        ),
        ("Created", utc_text(trail.created_at), "Finished", finished),
        ("Generated", utc_text(trail.generated_at), "Hash chain", chain_state),
    ]
    subject = drawing.bounded(trail.subject, width - label, 8, 8.5)
    data = [[Paragraph("Subject", s["label"]), Paragraph(subject, s["body"])]]
    data[0] += ["", ""]
    data += [
        [Paragraph(a, s["label"]), Paragraph(b, s["body"]), Paragraph(c, s["label"]),
         Paragraph(d, s["body"])]
        for a, b, c, d in rows
    ]  # fmt: skip
    table = drawing.table(data, [label, half - label, label, half - label], header=False)
    table.setStyle(TableStyle([("SPAN", (1, 0), (3, 0))]))
    return [*story, table]


def _documents(trail: AuditTrail, width: float) -> list[Flowable]:
    s = styles()
    hashes = drawing.width("after " + "0" * 64, drawing.FONT, 6.5) + 12
    name = width - 22 - 36 - hashes
    data: list[list[Any]] = [
        [drawing.head("#"), drawing.head("Name"), drawing.head("Pages"), drawing.head("SHA-256")]
    ]
    for index, document in enumerate(trail.documents, start=1):
        after = esc(document.sha256_after) if document.sha256_after else "—"
        data.append(
            [
                Paragraph(str(index), s["cell"]),
                Paragraph(drawing.bounded(document.name, name, 4), s["cell"]),
                Paragraph(str(document.pages), s["cell"]),
                Paragraph(
                    f"<font color='#6B7280'>before</font> {esc(document.sha256_before)}<br/>"
                    f"<font color='#6B7280'>after</font> {after}",
                    s["small"],
                ),
            ]
        )
    story: list[Flowable] = [
        Paragraph("Documents", s["h2"]),
        drawing.table(data, [22, name, 36, hashes]),
    ]
    if trail.signed_document_sha256:
        story += [
            Spacer(1, 5),
            Paragraph(
                "Signed document SHA-256: "
                f"<font size='7'>{esc(trail.signed_document_sha256)}</font>",
                s["body"],
            ),
        ]
    return story


def _recipients(trail: AuditTrail, width: float) -> list[Flowable]:
    s = styles()
    widths = [22, 0.0, 0.0, 62, 86, 62]
    widths[1] = widths[2] = (width - sum(widths)) / 2
    data: list[list[Any]] = [
        [drawing.head(h) for h in ("#", "Name", "Email", "Role", "Authentication", "Status")]
    ]
    for index, recipient in enumerate(trail.recipients, start=1):
        cells = (
            str(index),
            drawing.bounded(recipient.name, widths[1], 4),
            drawing.bounded(recipient.email, widths[2], 4),
            drawing.bounded(drawing.humanize(recipient.role), widths[3], 2),
            drawing.bounded(drawing.auth_label(recipient.authentication), widths[4], 2),
            drawing.bounded(drawing.humanize(recipient.status), widths[5], 2),
        )
        data.append([Paragraph(cell, s["cell"]) for cell in cells])
    return [Paragraph("Recipients", s["h2"]), drawing.table(data, widths)]


def _events(trail: AuditTrail, width: float) -> list[Flowable]:
    """Every event as a small table of its own: a summary row (seq, time, event, actor, IP)
    over evidence row(s) (user agent, details, hash, previous hash), never split from its
    summary; the column heads are repeated at the top of every page of the section.

    Why not one big table with ``repeatRows``: reportlab re-derives a split table's span and
    no-split maps from all remaining rows on every page, quadratic in the events (0.8 s for
    500). Cells are plain text wrapped here, not Paragraphs (three times slower to lay out).
    """
    s = styles()
    title = Paragraph(f"Events ({len(trail.entries)})", s["h2"])
    if not trail.entries:
        return [title, Paragraph("No events were recorded.", s["body"])]
    widths = [30.0, 62.0, 100.0, 0.0, 92.0]
    widths[3] = width - sum(widths)
    heads = [[drawing.head(h) for h in ("#", "Time (UTC)", "Event", "Actor", "IP address")]]
    head = drawing.table(heads, widths)
    note = Paragraph(
        "Each entry's hash is the SHA-256 of the entry without its hash (canonical JSON: keys "
        "sorted, compact, UTF-8), which includes the previous entry's hash.",
        s["label"],
    )
    tables = [_event(entry, widths, shaded=bool(n % 2)) for n, entry in enumerate(trail.entries)]
    return [
        title,
        note,
        Spacer(1, 4),
        SetTopFlowables([drawing.table(heads, widths)]),
        KeepTogether([head, tables[0]]),
        *tables[1:],
        SetTopFlowables([]),
    ]


def _event(entry: Mapping[str, Any], widths: list[float], *, shaded: bool) -> Table:
    evidence: list[tuple[str, str]] = []
    summary = [
        _wrapped(entry.get("seq"), widths[0], drawing.FONT),
        _time(entry.get("at")),
        _summary_cell("Event", entry.get("event"), widths[2], evidence, drawing.FONT_BOLD),
        _summary_cell("Actor", entry.get("actor"), widths[3], evidence),
        _summary_cell("IP address", entry.get("ip"), widths[4], evidence),
    ]
    rows = [summary] + [
        ["", labels, values, "", ""]
        for labels, values in _evidence_rows(
            [*_evidence(entry), *evidence], sum(widths[2:]) - 2 * drawing.CELL_PAD
        )
    ]
    commands: list[tuple[Any, ...]] = [
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), drawing.CELL_PAD),
        ("RIGHTPADDING", (0, 0), (-1, -1), drawing.CELL_PAD),
        ("TOPPADDING", (0, 0), (-1, 0), 3),
        ("TOPPADDING", (0, 1), (-1, -1), 0),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
        ("FONT", (0, 0), (-1, 0), drawing.FONT, _CELL, _CELL_LEADING),
        ("FONT", (2, 0), (2, 0), drawing.FONT_BOLD, _CELL, _CELL_LEADING),
        ("FONT", (0, 1), (-1, -1), drawing.FONT, _SMALL, _SMALL_LEADING),
        ("TEXTCOLOR", (0, 0), (-1, -1), drawing.INK),
        ("TEXTCOLOR", (1, 1), (1, -1), drawing.MUTED),
        ("NOSPLIT", (0, 0), (-1, 1)),
        ("LINEBELOW", (0, -1), (-1, -1), 0.5, RULE),
        *[("SPAN", (2, r), (4, r)) for r in range(1, len(rows))],
    ]
    if shaded:
        commands.append(("BACKGROUND", (0, 0), (-1, -1), _ZEBRA))
    return Table(rows, colWidths=widths, style=TableStyle(commands))


_CELL, _CELL_LEADING = 7.5, 9.5
_SMALL, _SMALL_LEADING = 6.5, 8.3
_SUMMARY_LINES = 12
"""A summary cell longer than this (only in a log not written by us) is cut there, and its
full value goes to the evidence rows, so no row outgrows a page and nothing is left out."""
_EVIDENCE_LINES = 40
"""Evidence lines per table row: a huge ``details`` continues on further rows and pages."""


def _wrapped(value: object, column: float, font: str, size: float = _CELL) -> str:
    return "\n".join(_lines(value, column - 2 * drawing.CELL_PAD, font, size))


def _lines(value: object, max_width: float, font: str = drawing.FONT, size: float = _SMALL):
    text = drawing.clean(value)
    if not text:
        return ["—"]
    return drawing.fit(text, font, size, max_width, max_lines=1_000_000)


def _summary_cell(
    label: str,
    value: object,
    column: float,
    evidence: list[tuple[str, str]],
    font: str = drawing.FONT,
) -> str:
    lines = _lines(value, column - 2 * drawing.CELL_PAD, font, _CELL)
    if len(lines) <= _SUMMARY_LINES:
        return "\n".join(lines)
    evidence.append((f"{label} (in full)", drawing.clean(value)))
    return "\n".join([*lines[: _SUMMARY_LINES - 1], "… (in full below)"])


def _evidence_rows(evidence: list[tuple[str, str]], value_width: float) -> list[tuple[str, str]]:
    """(labels, values) cell texts, their lines aligned, at most ``_EVIDENCE_LINES`` a row."""
    labels: list[str] = []
    values: list[str] = []
    for label, text in evidence:
        lines = _lines(text, value_width)
        labels += [label] + [""] * (len(lines) - 1)
        values += lines
    return [
        ("\n".join(labels[i : i + _EVIDENCE_LINES]), "\n".join(values[i : i + _EVIDENCE_LINES]))
        for i in range(0, len(values), _EVIDENCE_LINES)
    ]


def _consent(trail: AuditTrail) -> list[Flowable]:
    s = styles()
    story: list[Flowable] = [
        Paragraph("Consent to sign electronically", s["h2"]),
        Paragraph(f"Version {esc(trail.consent_version)}", s["label"]),
        Spacer(1, 3),
    ]
    paragraphs = [p for p in re.split(r"\n\s*\n", trail.consent_text or "") if p.strip()]
    story += [Paragraph(esc(p), s["para"]) for p in paragraphs] or [Paragraph("—", s["body"])]
    story += [
        Paragraph("About this document", s["h2"]),
        Paragraph(
            f"The complete event log is embedded in this PDF as the file "
            f"<b>{chain.ATTACHMENT_NAME}</b> (format {chain.FORMAT}); "
            "<b>signbot verify</b> re-checks its hash chain. This audit "
            "trail is sealed with the deployment's certificate, like the signed document.",
            s["body"],
        ),
    ]
    return story


# --- cells ------------------------------------------------------------------------------------

_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2}(?:\.\d+)?)Z$")


def _time(value: object) -> str:
    """``2026-11-28T14:03:22.123Z`` as date over time; anything else as written."""
    match = _ISO.match(str(value or ""))
    return f"{match[1]}\n{match[2]}" if match else _wrapped(value, 62.0, drawing.FONT)


def _evidence(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    lines = [("User agent", drawing.clean(entry.get("userAgent")) or "—")]
    details = _details(entry.get("details"))
    if details:
        lines.append(("Details", details))
    return [*lines, ("Hash", str(entry.get("hash"))), ("Previous", str(entry.get("prevHash")))]


def _details(details: object) -> str:
    """``details`` compact: ``reason: Wrong amount · consentVersion: 2026-01``."""
    if not details:
        return ""
    if not isinstance(details, Mapping):
        return _json(details)
    return " · ".join(
        f"{key}: {value if isinstance(value, str) else _json(value)}"
        for key, value in details.items()
    )


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
