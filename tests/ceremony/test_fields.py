"""Certyneo's fields end to end over HTTP (the no-JavaScript path): placed by anchors or
coordinates at create, shown on the signer page, enforced, and stamped where they belong in
the sealed PDF (read back with PDFium's text extraction inside each field's box)."""

from __future__ import annotations

import io
import re
import time
from typing import Any

import httpx
import pypdfium2 as pdfium
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from tests.conftest import Tenant

SIGNER = "client@example.com"
OTHER = "vendor@example.com"


def contract() -> bytes:
    """Two A4 pages; the anchor phrases split across runs as real PDFs often do."""
    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4)
    pdf.setFont("Helvetica", 12)
    pdf.drawString(72, 760, "Service agreement between Acme and the Client.")
    pdf.drawString(72, 700, "Company")
    pdf.drawString(122, 700, " name:")
    pdf.drawString(72, 640, "Signature of the Client:")
    pdf.drawString(72, 600, "Date:")
    pdf.showPage()
    pdf.setFont("Helvetica", 12)
    pdf.drawString(72, 760, "Annex: options chosen by the Client.")
    pdf.drawString(72, 300, "Signature of the Vendor:")
    pdf.save()
    return out.getvalue()


def _fields() -> list[dict[str, Any]]:
    return [
        {
            "recipientEmail": SIGNER,
            "fieldType": "SIGNATURE",
            "anchorText": "signature of the client",
        },
        {
            "recipientEmail": SIGNER,
            "fieldType": "DATE_SIGNED",
            "anchorText": "Date:",
            "width": 110,
            "height": 20,
        },
        {
            "recipientEmail": SIGNER,
            "fieldType": "TEXT",
            "anchorText": "Company name:",
            "label": "Company",
            "width": 200,
            "height": 20,
        },
        {
            "recipientEmail": SIGNER,
            "fieldType": "CHECKBOX",
            "pageNumber": 2,
            "x": 72,
            "y": 120,
            "width": 16,
            "height": 16,
            "label": "I accept the annex",
        },
        {
            "recipientEmail": SIGNER,
            "fieldType": "DROPDOWN",
            "pageNumber": 2,
            "x": 72,
            "y": 160,
            "width": 150,
            "height": 20,
            "options": ["Monthly", "Yearly"],
            "label": "Billing",
        },
        {
            "recipientEmail": SIGNER,
            "fieldType": "RADIO_GROUP",
            "pageNumber": 2,
            "x": 72,
            "y": 200,
            "width": 150,
            "height": 20,
            "options": ["Paris", "Brussels"],
            "label": "Venue",
        },
        {
            "recipientEmail": SIGNER,
            "fieldType": "INITIALS",
            "pageNumber": 2,
            "x": 480,
            "y": 780,
            "width": 60,
            "height": 24,
        },
        {
            "recipientEmail": SIGNER,
            "fieldType": "TEXT",
            "anchorText": "No such phrase",
            "x": 300,
            "y": 400,
            "required": False,
        },
        {
            "recipientEmail": OTHER,
            "fieldType": "SIGNATURE",
            "anchorText": "Signature of the Vendor:",
        },
    ]


def _create(tenant: Tenant, **extra: Any) -> dict[str, Any]:
    document = tenant.client.post(
        "/documents", files={"file": ("agreement.pdf", contract(), "application/pdf")}
    ).json()
    response = tenant.client.post(
        "/envelopes",
        json={
            "subject": "Service agreement",
            "documentIds": [document["id"]],
            "recipients": [
                {"email": SIGNER, "name": "Claire Client", "order": 1},
                {"email": OTHER, "name": "Victor Vendor", "order": 2},
            ],
            "fields": _fields(),
            **extra,
        },
    )
    assert response.status_code == 201, response.text
    assert tenant.client.post(f"/envelopes/{response.json()['id']}/send").status_code == 200
    return response.json()


def _text_in(pdf: bytes, page: int, box: dict[str, float], slack: float = 3.0) -> str:
    """The text PDFium finds inside a field's box (points, y from the top)."""
    document = pdfium.PdfDocument(pdf)
    try:
        target = document[page - 1]
        height = target.get_height()
        text = target.get_textpage().get_text_bounded(
            left=box["x"] - slack,
            bottom=height - (box["y"] + box["height"]) - slack,
            right=box["x"] + box["width"] + slack,
            top=height - box["y"] + slack,
        )
    finally:
        document.close()
    return " ".join(text.split())


def test_fields_are_placed_shown_enforced_and_stamped(tenant: Tenant) -> None:
    envelope = _create(tenant)
    fields = envelope["fields"]
    signature = fields[0]
    assert signature["anchorFound"] is True
    # "right" of the phrase drawn at x=72..~200, on its line (y from the top: 842-640)
    assert signature["placement"]["x"] > 180 and abs(signature["placement"]["y"] - 190) < 25
    assert fields[7]["anchorFound"] is False and fields[7]["placement"]["x"] == 300
    assert any("No such phrase" in w for w in envelope["warnings"])

    url = next(r["signUrl"] for r in envelope["recipients"] if r["email"] == SIGNER)
    page = httpx.get(url).text
    assert page.count('class="field field-') == 8  # this signer's fields, over the images
    assert 'name="field_' in page and 'form="sign-form"' in page
    inputs = {
        kind: f"field_{f['id']}"
        for f, kind in zip(
            fields,
            ["sig", "date", "company", "check", "drop", "radio", "ini", "optional", "other"],
            strict=True,
        )
    }
    assert inputs["other"] not in page  # never another recipient's fields

    base = {
        "name": "Claire Client",
        "mode": "typed",
        "typed": "Claire Client",
        "consent": "yes",
        "initials": "CC",
    }
    missing = httpx.post(f"{url}/sign", data={**base, inputs["drop"]: "Monthly"})
    assert missing.status_code == 400
    assert f'id="{inputs["company"]}-error"' in missing.text
    assert f'id="{inputs["check"]}-error"' in missing.text
    bogus = httpx.post(
        f"{url}/sign",
        data={
            **base,
            inputs["company"]: "Acme",
            inputs["check"]: "yes",
            inputs["drop"]: "Weekly",
            inputs["radio"]: "Paris",
        },
    )
    assert bogus.status_code == 400 and f'id="{inputs["drop"]}-error"' in bogus.text

    filled = {
        **base,
        inputs["company"]: "Nguyễn & Fils SARL",
        inputs["check"]: "yes",
        inputs["drop"]: "Yearly",
        inputs["radio"]: "Brussels",
    }
    assert httpx.post(f"{url}/sign", data=filled).status_code == 303
    vendor = next(r["signUrl"] for r in envelope["recipients"] if r["email"] == OTHER)
    vendor_form = {
        "name": "Victor Vendor",
        "mode": "typed",
        "typed": "Victor Vendor",
        "consent": "yes",
    }
    assert httpx.post(f"{vendor}/sign", data=vendor_form).status_code == 303

    sealed = _sealed(tenant, envelope["id"])
    placed = {key: f["placement"] for key, f in zip(inputs, fields, strict=True)}
    assert "Nguyễn & Fils SARL" in _text_in(sealed, 1, placed["company"])
    assert re.search(r"\d{4}-\d{2}-\d{2}", _text_in(sealed, 1, placed["date"]))
    assert "Claire Client" in _text_in(sealed, 1, placed["sig"])
    assert "✓" in _text_in(sealed, 2, placed["check"])
    assert "Yearly" in _text_in(sealed, 2, placed["drop"])
    assert "Brussels" in _text_in(sealed, 2, placed["radio"])
    assert "CC" in _text_in(sealed, 2, placed["ini"])
    assert "Victor Vendor" in _text_in(sealed, 2, placed["other"])
    # both signed in fields: no appended signature page, only the certificate page
    document = pdfium.PdfDocument(sealed)
    assert len(document) == 3
    document.close()


def test_initials_on_every_page(tenant: Tenant) -> None:
    document = tenant.client.post(
        "/documents", files={"file": ("three.pdf", contract(), "application/pdf")}
    ).json()
    created = tenant.client.post(
        "/envelopes",
        json={
            "subject": "Initialled",
            "documentIds": [document["id"]],
            "recipients": [{"email": "i@example.com", "name": "Ines Ivanova"}],
            "initialsOnEveryPage": True,
        },
    ).json()
    assert tenant.client.post(f"/envelopes/{created['id']}/send").status_code == 200
    url = created["recipients"][0]["signUrl"]
    page = httpx.get(url).text
    assert 'id="initials"' in page and 'value="II"' in page
    form = {"name": "Ines Ivanova", "mode": "typed", "typed": "Ines Ivanova", "consent": "yes"}
    assert httpx.post(f"{url}/sign", data={**form, "initials": ""}).status_code == 400
    assert httpx.post(f"{url}/sign", data={**form, "initials": "I.I."}).status_code == 303
    sealed = _sealed(tenant, created["id"])
    document_ = pdfium.PdfDocument(sealed)
    try:
        for index in range(2):  # both pages of the original
            assert "I.I." in document_[index].get_textpage().get_text_range()
    finally:
        document_.close()


def test_a_field_for_someone_else_or_a_missing_page_is_refused(tenant: Tenant) -> None:
    document = tenant.client.post(
        "/documents", files={"file": ("a.pdf", contract(), "application/pdf")}
    ).json()
    body = {
        "subject": "x",
        "documentIds": [document["id"]],
        "recipients": [{"email": SIGNER, "name": "C"}],
    }
    stranger = tenant.client.post(
        "/envelopes", json={**body, "fields": [{"recipientEmail": "who@example.com"}]}
    )
    assert stranger.status_code == 400 and "recipientEmail" in stranger.text
    beyond = tenant.client.post(
        "/envelopes", json={**body, "fields": [{"recipientEmail": SIGNER, "pageNumber": 9}]}
    )
    assert beyond.status_code == 400 and "pageNumber" in beyond.text
    stamp = tenant.client.post(
        "/envelopes", json={**body, "fields": [{"recipientEmail": SIGNER, "fieldType": "STAMP"}]}
    )
    assert stamp.status_code == 400 and "STAMP" in stamp.text


def _sealed(tenant: Tenant, envelope_id: str) -> bytes:
    deadline = time.monotonic() + 30
    while True:
        response = tenant.client.get(f"/envelopes/{envelope_id}/signed-document")
        if response.status_code == 200:
            return response.content
        assert time.monotonic() < deadline, response.text
        time.sleep(0.2)
