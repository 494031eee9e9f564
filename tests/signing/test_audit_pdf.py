"""render_audit_trail(): the printed evidence and the embedded log, read back from the PDF."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pypdf import PdfReader

from bot.signing import chain
from bot.signing.audit_pdf import AuditDocument, AuditRecipient, AuditTrail, render_audit_trail
from tests.support.timing import cpu_seconds

T0 = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
ENVELOPE = "env_01JDXYZABCDEFGHJKMNPQRSTVW"
EVENTS = (
    "envelope.created",
    "envelope.sent",
    "recipient.viewed",
    "consent.given",
    "recipient.signed",
)
UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def entries(count: int, details: dict[str, Any] | None = None) -> tuple[dict[str, Any], ...]:
    out: list[dict[str, Any]] = []
    prev = chain.GENESIS
    for seq in range(1, count + 1):
        at = T0 + timedelta(seconds=17 * seq, milliseconds=seq % 1000)
        entry = chain.link(
            {
                "seq": seq,
                "at": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z",
                "event": EVENTS[seq % len(EVENTS)],
                "actor": f"recipient rcp_{seq:04d} (Nguyễn Thị Hồng <hong@example.vn>)",
                "ip": "2001:db8:85a3::8a2e:370:7334" if seq % 2 else "203.0.113.9",
                "userAgent": UA,
                "details": details if details is not None else {"consentVersion": "2026-01"},
            },
            prev,
        )
        prev = entry["hash"]
        out.append(entry)
    return tuple(out)


def trail(**kw: Any) -> AuditTrail:
    fields: dict[str, Any] = {
        "envelope_id": ENVELOPE,
        "subject": "Master services agreement 2026",
        "account_name": "Acme SARL",
        "environment": "live",
        "status": "COMPLETED",
        "created_at": T0,
        "finished_at": T0 + timedelta(hours=2),
        "documents": (
            AuditDocument("Contract.pdf", 3, "a1" * 32, "b2" * 32),
            AuditDocument("Annex.pdf", 1, "c3" * 32, None),
        ),
        "recipients": (
            AuditRecipient("Nguyễn Thị Hồng", "hong@example.vn", "SIGNER", "EMAIL_OTP", "SIGNED"),
            AuditRecipient("Zoë Ørsted", "zoe@example.dk", "APPROVER", None, "APPROVED"),
            AuditRecipient("Carla Copy", "carla@example.com", "CARBON_COPY", "NONE", "COMPLETED"),
        ),
        "entries": entries(12),
        "consent_version": "2026-01",
        "consent_text": "I agree to sign electronically.\n\nMy signature binds me.",
        "signed_document_sha256": "d4" * 32,
        "generated_at": T0 + timedelta(hours=3),
    }
    fields.update(kw)
    return AuditTrail(**fields)


def text_of(pdf: bytes, first: int | None = None, last: int | None = None) -> str:
    """pdftotext's reading of the pages (all by default), whitespace collapsed."""
    if shutil.which("pdftotext"):
        pages = []
        if first:
            pages += ["-f", str(first)]
        if last:
            pages += ["-l", str(last)]
        run = subprocess.run(
            ["pdftotext", "-raw", *pages, "-", "-"], input=pdf, capture_output=True, check=True
        )
        text = run.stdout.decode()
    else:
        reader = PdfReader(io.BytesIO(pdf))
        chosen = reader.pages[(first or 1) - 1 : last or len(reader.pages)]
        text = "\n".join(page.extract_text() for page in chosen)
    return " ".join(text.split())


def test_every_entry_and_its_hashes_are_on_paper() -> None:
    audit = trail()
    text = text_of(render_audit_trail(audit))
    for entry in audit.entries:
        assert entry["hash"] in text
        assert entry["prevHash"] in text
        assert entry["event"] in text
    assert text.count(UA) == len(audit.entries)
    assert "2026-11-28 14:00:17.001" in text  # seq 1, UTC, milliseconds kept
    assert "consentVersion: 2026-01" in text
    assert "Intact (12 entries)" in text


def test_header_documents_recipients_and_consent() -> None:
    text = text_of(render_audit_trail(trail()))
    for expected in (
        "Audit trail",
        ENVELOPE,
        "Master services agreement 2026",
        "Acme SARL",
        "Live",
        "Completed",
        "2026-11-28 14:00:00 UTC",
        "2026-11-28 16:00:00 UTC",
        "a1" * 32,
        "b2" * 32,
        "c3" * 32,
        "d4" * 32,
        "Nguyễn Thị Hồng",
        "Zoë Ørsted",
        "Carbon copy",
        "Email one-time code",
        "Email link",
        "Version 2026-01",
        "I agree to sign electronically.",
        "My signature binds me.",
        chain.ATTACHMENT_NAME,
    ):
        assert expected in text, expected
    assert "TEST" not in text


def test_the_log_is_embedded_and_verifies() -> None:
    audit = trail()
    reader = PdfReader(io.BytesIO(render_audit_trail(audit)))
    attached = reader.attachments[chain.ATTACHMENT_NAME]
    assert attached == [chain.document(audit.envelope_id, audit.entries)]
    body = json.loads(attached[0])
    assert body["format"] == chain.FORMAT and body["envelopeId"] == ENVELOPE
    assert chain.verify_chain(body["entries"]).ok


def test_the_output_is_a_clean_unsigned_pdf_and_reproducible() -> None:
    audit = trail()
    pdf = render_audit_trail(audit)
    reader = PdfReader(io.BytesIO(pdf))
    assert not reader.is_encrypted
    assert "/AcroForm" not in reader.trailer["/Root"]
    assert pdf.count(b"%%EOF") == 1
    for page in reader.pages:  # every font embedded: DejaVu, never a system or base-14 font
        fonts = page["/Resources"].get_object()["/Font"].get_object()
        for font in fonts.values():
            assert "/FontFile2" in font.get_object()["/FontDescriptor"].get_object()
    assert render_audit_trail(audit) == pdf


def test_five_hundred_entries_paginate_with_numbered_footers() -> None:
    audit = trail(entries=entries(500))
    pdf, cpu = cpu_seconds(lambda: render_audit_trail(audit))
    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    assert pages > 10
    assert f"Page 1 of {pages}" in text_of(pdf, 1, 1)
    assert f"Page {pages} of {pages}" in text_of(pdf, pages, pages)
    text = text_of(pdf)
    for entry in audit.entries:
        assert entry["hash"] in text
    # Every page of the events repeats the column heads.
    for number in range(2, pages):
        assert "Time (UTC) Event Actor IP address" in text_of(pdf, number, number), number
    assert cpu < 2, cpu  # ~0.3 s measured


def test_the_test_environment_is_marked_on_every_page() -> None:
    pdf = render_audit_trail(trail(environment="test", entries=entries(60)))
    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    assert pages > 1
    assert "TEST (sandbox)" in text_of(pdf, 1, 1)
    for number in range(1, pages + 1):
        assert "TEST (sandbox) — not legally binding" in text_of(pdf, number, number)


def test_user_text_is_printed_literally() -> None:
    hostile = "<script>alert(1)</script> & A & B <b>bold</b> &amp;"
    audit = trail(
        subject=hostile,
        account_name="A & B <i>",
        recipients=(AuditRecipient("<b>Bob</b>", "bob@example.com", "SIGNER", None, "DECLINED"),),
        entries=entries(3, details={"reason": "Wrong <amount> & terms"}),
        consent_text="Terms <u>here</u> & there",
    )
    text = text_of(render_audit_trail(audit))
    for expected in (hostile, "A & B <i>", "<b>Bob</b>", "reason: Wrong <amount> & terms"):
        assert expected in text, expected
    assert "Terms <u>here</u> & there" in text


def test_a_broken_chain_is_reported_not_hidden() -> None:
    log = list(entries(5))
    log[2] = {**log[2], "event": "recipient.declined"}  # edited after the fact
    text = text_of(render_audit_trail(trail(entries=tuple(log))))
    assert "Broken: entry 3: hash does not match its content" in text


def test_huge_values_continue_over_pages_in_full() -> None:
    reason = " ".join(f"word{n:05d}" for n in range(3000))  # ~30,000 characters
    audit = trail(entries=entries(2, details={"reason": reason}), subject="S" * 5000)
    pdf = render_audit_trail(audit)
    text = text_of(pdf)
    assert "word00000" in text and "word02999" in text
    assert len(re.findall(r"word\d{5}", text)) == 2 * 3000  # nothing left out
    assert len(PdfReader(io.BytesIO(pdf)).pages) > 2


def test_no_events_and_no_finish_time() -> None:
    audit = replace(trail(), entries=(), finished_at=None, signed_document_sha256=None)
    text = text_of(render_audit_trail(audit))
    assert "No events were recorded." in text
    assert "Broken: the log is empty" in text
