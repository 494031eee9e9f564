"""The older one-shot form (signers + documents): bad input is a 400 and leaves no file."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import Tenant, make_pdf


def _files(tenant: Tenant) -> int:
    root = tenant.server.settings.storage_root
    return sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0


@pytest.mark.parametrize(
    ("signers", "field"),
    [
        ([{"email": "a@example.com", "phone": "abc"}], "signers.0.phone"),
        ([{"email": "a@example.com"}, {"email": "A@example.com"}], "signers.1.email"),
        ([], "signers"),
    ],
)
def test_bad_signers_are_refused_before_anything_is_stored(
    tenant: Tenant, signers: list[dict], field: str
) -> None:
    before = _files(tenant)
    response = tenant.client.post(
        "/envelopes",
        json={
            "subject": "One shot",
            "signers": signers,
            "documents": [{"name": "c.pdf", "base64Pdf": base64.b64encode(make_pdf(1)).decode()}],
        },
    )
    assert response.status_code == 400, response.text
    assert (
        field in [e["field"] for e in response.json().get("errors", [])]
        or field in (response.json()["error"])
    )
    assert _files(tenant) == before
    assert tenant.client.get("/documents").json()["pagination"]["total"] == 0


def test_one_shot_sends_to_signers_only(tenant: Tenant) -> None:
    response = tenant.client.post(
        "/envelopes",
        json={
            "signers": [{"email": "a@example.com", "name": "A", "role": "VIEWER"}],
            "documents": [{"name": "c.pdf", "base64Pdf": base64.b64encode(make_pdf(1)).decode()}],
        },
    )
    assert response.status_code == 201, response.text
    out = response.json()
    assert out["status"] == "SENT"
    assert out["recipients"][0]["role"] == "SIGNER"
    assert out["signers"][0]["signUrl"].startswith(f"{tenant.server.base_url}/sign/")
    assert out["subject"] == "c.pdf"
