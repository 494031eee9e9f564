"""Hostile input through the real HTTP app: never a 5xx, always a 4xx problem+json that says
what is wrong, and a refused request leaves nothing behind (no half-created envelope)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image
from pypdf import PdfWriter

from bot import migrations
from bot.accounts import service as accounts
from bot.app import create_app
from bot.config import Settings
from bot.db import Database
from tests.conftest import Tenant, draft, make_pdf, upload
from tests.support.problems import PROBLEM, settle_after_server_error
from tests.support.servers import free_port, uvicorn_thread

MiB = 1 << 20


# --- helpers ----------------------------------------------------------------------------------


def assert_problem(
    response: httpx.Response,
    status: int | tuple[int, ...],
    code: str | None = None,
    mentions: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A 4xx problem+json with Certyneo's ``error``/``code`` and RFC 9457's ``status``, whose
    text (message and per-field errors) mentions every string of ``mentions``."""
    settle_after_server_error(response)
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert isinstance(body, dict)
    assert body["status"] == response.status_code
    assert isinstance(body["error"], str) and body["error"].strip()
    assert isinstance(body["code"], str) and body["code"].isupper()
    if code is not None:
        assert body["code"] == code, body
    assert "Traceback" not in response.text
    said = (body["error"] + " " + json.dumps(body.get("errors", []))).lower()
    for needle in mentions:
        assert needle.lower() in said, (needle, body)
    return body


def envelope_total(tenant: Tenant) -> int:
    response = tenant.client.get("/envelopes")
    assert response.status_code == 200, response.text
    return int(response.json()["pagination"]["total"])


def document_total(client: httpx.Client) -> int:
    response = client.get("/documents")
    assert response.status_code == 200, response.text
    return int(response.json()["pagination"]["total"])


def recipient(**overrides: Any) -> dict[str, Any]:
    return {"email": "client@example.com", "name": "Marie Dubois", "role": "SIGNER", **overrides}


def body_for(doc_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "subject": "Contrat de prestation",
        "documentIds": [doc_id],
        "recipients": [recipient()],
        **overrides,
    }


def png_bytes(width: int = 40, height: int = 30) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def encrypted_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    writer.encrypt("s3cret", algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def pdf_of_size(size: int) -> bytes:
    """A valid one-page PDF of exactly ``size`` bytes (padded through its metadata)."""
    pad = 0
    for _ in range(10):
        writer = PdfWriter()
        writer.add_blank_page(612, 792)
        writer.add_metadata({"/Padding": "x" * pad})
        buf = io.BytesIO()
        writer.write(buf)
        data = buf.getvalue()
        if len(data) == size:
            return data
        pad += size - len(data)
    raise AssertionError(f"could not build a PDF of exactly {size} bytes")


def raw_request(base_url: str, request_line: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """Send a request line as is (httpx would normalise ``..`` away); return (status, body)."""
    parts = urlsplit(base_url)
    lines = [request_line, f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(payload)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


# --- bodies of POST /envelopes that must be refused -------------------------------------------


@dataclass(frozen=True)
class Bad:
    id: str
    make: Callable[[str], Any]
    """doc id -> the JSON body (or ``bytes``, sent as is with a JSON content type)."""
    mentions: tuple[str, ...]
    """What the answer must name (field paths, or words of the reason)."""


BAD_BODIES = [
    Bad("json-truncated", lambda d: b'{"subject": "x", "documentIds": [', ("json",)),
    Bad("json-garbage", lambda d: b"not json at all", ("json",)),
    Bad("json-invalid-utf8", lambda d: b'{"subject": "\xff\xfe"}', ()),
    Bad("json-deeply-nested", lambda d: b"[" * 100_000 + b"]" * 100_000, ()),
    Bad("json-empty-body", lambda d: b"", ()),
    Bad("json-array", lambda d: [body_for(d)], ()),
    Bad("json-string", lambda d: "subject", ()),
    Bad("json-number", lambda d: 42, ()),
    Bad("json-null", lambda d: None, ()),
    Bad("subject-number", lambda d: body_for(d, subject=123), ("subject",)),
    Bad("subject-object", lambda d: body_for(d, subject={"a": 1}), ("subject",)),
    Bad("subject-100kB", lambda d: body_for(d, subject="s" * 100_000), ("subject",)),
    Bad(
        "subject-missing",
        lambda d: {k: v for k, v in body_for(d).items() if k != "subject"},
        ("subject",),
    ),
    Bad("message-huge", lambda d: body_for(d, message="m" * 100_000), ("message",)),
    Bad("recipients-string", lambda d: body_for(d, recipients="x"), ("recipients",)),
    Bad("recipients-of-numbers", lambda d: body_for(d, recipients=[1]), ("recipients.0",)),
    Bad("recipients-empty", lambda d: body_for(d, recipients=[]), ("recipients",)),
    Bad(
        "recipients-101",
        lambda d: body_for(
            d, recipients=[recipient(email=f"r{i}@example.com") for i in range(101)]
        ),
        ("recipients",),
    ),
    Bad(
        "recipients-duplicate-email",
        lambda d: body_for(
            d, recipients=[recipient(), recipient(email="CLIENT@example.com", name="Twin")]
        ),
        ("recipients.1.email",),
    ),
    Bad(
        "role-boss",
        lambda d: body_for(d, recipients=[recipient(role="BOSS")]),
        ("recipients.0.role",),
    ),
    Bad(
        "order-negative",
        lambda d: body_for(d, recipients=[recipient(order=-1)]),
        ("recipients.0.order",),
    ),
    Bad(
        "order-letter",
        lambda d: body_for(d, recipients=[recipient(order="a")]),
        ("recipients.0.order",),
    ),
    Bad(
        "order-1e9",
        lambda d: body_for(d, recipients=[recipient(order=1e9)]),
        ("recipients.0.order",),
    ),
    Bad(
        "order-infinite",
        lambda d: (
            b'{"subject": "x", "documentIds": ["%s"], "recipients": '
            b'[{"email": "a@example.com", "order": 1e400}]}' % d.encode()
        ),
        ("recipients.0.order",),
    ),
    Bad(
        "email-not-an-email",
        lambda d: body_for(d, recipients=[recipient(email="not-an-email")]),
        ("recipients.0.email",),
    ),
    Bad(
        "email-crlf-injection",
        lambda d: body_for(
            d, recipients=[recipient(email="victim@example.com\r\nBcc: all@evil.example")]
        ),
        ("recipients.0.email",),
    ),
    Bad(
        "email-missing",
        lambda d: body_for(d, recipients=[{"name": "Nobody"}]),
        ("recipients.0.email",),
    ),
    Bad(
        "name-100kB",
        lambda d: body_for(d, recipients=[recipient(name="n" * 100_000)]),
        ("recipients.0.name",),
    ),
    Bad(
        "phone-garbage",
        lambda d: body_for(d, recipients=[recipient(phone="call me maybe")]),
        ("recipients.0.phone",),
    ),
    Bad("tags-11", lambda d: body_for(d, tags=[f"t{i}" for i in range(11)]), ("tags",)),
    Bad("tag-41-chars", lambda d: body_for(d, tags=["t" * 41]), ("tags.0",)),
    Bad("tags-not-a-list", lambda d: body_for(d, tags="urgent"), ("tags",)),
    Bad("locale-xx", lambda d: body_for(d, locale="xx"), ("locale",)),
    Bad("locale-garbage", lambda d: body_for(d, locale="en GB; drop table"), ("locale",)),
    Bad(
        "redirect-http",
        lambda d: body_for(d, redirectUrl="http://example.com/done"),
        ("redirecturl", "https"),
    ),
    Bad(
        "redirect-javascript",
        lambda d: body_for(d, redirectUrl="javascript:alert(1)"),
        ("redirecturl", "https"),
    ),
    Bad(
        "signature-level-advanced",
        lambda d: body_for(d, signatureLevel="ADVANCED"),
        ("signaturelevel", "advanced", "not supported"),
    ),
    Bad(
        "signature-level-qualified",
        lambda d: body_for(d, signatureLevel="QUALIFIED"),
        ("signaturelevel", "not supported"),
    ),
    Bad("signing-order-random", lambda d: body_for(d, signingOrder="RANDOM"), ("signingorder",)),
    Bad(
        "expires-in-the-past",
        lambda d: body_for(d, expiresAt="2001-01-01T00:00:00Z"),
        ("expiresat", "future"),
    ),
    Bad("expires-not-a-date", lambda d: body_for(d, expiresAt="next tuesday"), ("expiresat",)),
    Bad(
        "expires-overflows-in-utc",
        lambda d: body_for(d, expiresAt="9999-12-31T23:59:59-12:00"),
        ("expiresat",),
    ),
    Bad(
        "send-at-underflows-in-utc",
        lambda d: body_for(d, sendAt="0001-01-01T00:00:00+14:00"),
        ("sendat",),
    ),
    Bad("expires-a-number-too-big", lambda d: body_for(d, expiresAt=1e20), ("expiresat",)),
    Bad(
        "template-and-documents",
        lambda d: body_for(d, templateId="tpl_nda"),
        ("templateid", "documentids"),
    ),
    Bad("document-ids-empty", lambda d: body_for(d, documentIds=[]), ("documentids",)),
    Bad(
        "document-ids-unknown",
        lambda d: body_for(d, documentIds=["doc_01HG0000000000000000000000"]),
        ("documentids.0",),
    ),
    Bad(
        "document-ids-garbage",
        lambda d: body_for(d, documentIds=["../../etc/passwd"]),
        ("documentids.0",),
    ),
    Bad(
        "document-ids-duplicate",
        lambda d: body_for(d, documentIds=[d, d]),
        ("documentids.1", "twice"),
    ),
    Bad("document-ids-numbers", lambda d: body_for(d, documentIds=[1, 2]), ("documentids.0",)),
    Bad(
        "field-recipient-mismatch",
        lambda d: body_for(d, fields=[{"recipientEmail": "stranger@example.com", "pageNumber": 1}]),
        ("fields.0.recipientEmail",),
    ),
    Bad(
        "field-attachment",
        lambda d: body_for(
            d, fields=[{"recipientEmail": "client@example.com", "fieldType": "ATTACHMENT"}]
        ),
        ("fields.0.fieldtype", "attachment", "not supported"),
    ),
    Bad(
        "field-dropdown-without-options",
        lambda d: body_for(
            d, fields=[{"recipientEmail": "client@example.com", "fieldType": "DROPDOWN"}]
        ),
        ("fields.0", "options"),
    ),
    Bad(
        "field-page-beyond-document",
        lambda d: body_for(d, fields=[{"recipientEmail": "client@example.com", "pageNumber": 3}]),
        ("fields.0.pageNumber", "2 page"),
    ),
    Bad(
        "field-document-index-beyond",
        lambda d: body_for(
            d, fields=[{"recipientEmail": "client@example.com", "documentIndex": 1}]
        ),
        ("fields.0.documentIndex",),
    ),
    Bad(
        "field-negative-coordinates",
        lambda d: body_for(d, fields=[{"recipientEmail": "client@example.com", "x": -5}]),
        ("fields.0.x",),
    ),
    Bad("metadata-not-an-object", lambda d: body_for(d, metadata="x"), ("metadata",)),
    Bad(
        "metadata-nan",
        lambda d: json.dumps(body_for(d, metadata={"amount": float("nan")})).encode(),
        ("metadata",),
    ),
    Bad(
        "metadata-infinity",
        lambda d: json.dumps(body_for(d, metadata={"n": {"deep": [float("-inf")]}})).encode(),
        ("metadata",),
    ),
    Bad(
        "field-x-nan",
        lambda d: json.dumps(
            body_for(d, fields=[{"recipientEmail": "client@example.com", "x": float("nan")}])
        ).encode(),
        ("fields.0.x",),
    ),
    Bad(
        "workspace-unknown",
        lambda d: body_for(d, workspaceId="ws_01HG0000000000000000000000"),
        ("workspaceid",),
    ),
]


@pytest.mark.parametrize("bad", BAD_BODIES, ids=[b.id for b in BAD_BODIES])
def test_bad_envelope_body_is_a_400_that_says_why_and_creates_nothing(
    tenant: Tenant, bad: Bad
) -> None:
    doc = upload(tenant)
    before = envelope_total(tenant)
    payload = bad.make(doc["id"])
    if isinstance(payload, bytes):
        response = tenant.client.post(
            "/envelopes", content=payload, headers={"Content-Type": "application/json"}
        )
    else:
        response = tenant.client.post("/envelopes", json=payload)
    assert_problem(response, 400, "VALIDATION_ERROR", bad.mentions)
    assert envelope_total(tenant) == before


def test_a_400_names_each_wrong_field(tenant: Tenant) -> None:
    doc = upload(tenant)
    body = body_for(doc["id"], subject=123, recipients=[recipient(email="nope", role="BOSS")])
    problem = assert_problem(tenant.client.post("/envelopes", json=body), 400, "VALIDATION_ERROR")
    fields = {e["field"] for e in problem["errors"]}
    assert {"subject", "recipients.0.email", "recipients.0.role"} <= fields


CONTROL_CASES = {
    "subject-nul": ({"subject": "Contrat\x00"}, "subject"),
    "subject-crlf": ({"subject": "Contrat\r\nBcc: all@evil.example"}, "subject"),
    "message-nul": ({"message": "bonjour\x00"}, "message"),
    "tag-nul": ({"tags": ["a\x00b"]}, "tags.0"),
    "recipient-name-nul": (
        {"recipients": [recipient(name="Marie\x00Dubois")]},
        "recipients.0.name",
    ),
    "recipient-name-crlf": (
        {"recipients": [recipient(name="Marie\r\nBcc: all@evil.example")]},
        "recipients.0.name",
    ),
    "recipient-email-nul": (
        {"recipients": [recipient(email="client\x00@example.com")]},
        "recipients.0.email",
    ),
    "field-label-nul": (
        {"fields": [{"recipientEmail": "client@example.com", "label": "x\x00"}]},
        "fields.0.label",
    ),
}


@pytest.mark.parametrize(
    ("overrides", "field"), list(CONTROL_CASES.values()), ids=list(CONTROL_CASES)
)
def test_control_characters_in_text_are_400_naming_the_field(
    tenant: Tenant, overrides: dict[str, Any], field: str
) -> None:
    """NUL breaks PostgreSQL text (a 500 there) and CR/LF reach email headers: refused."""
    doc = upload(tenant)
    before = envelope_total(tenant)
    response = tenant.client.post("/envelopes", json=body_for(doc["id"], **overrides))
    reason = "invalid" if field.endswith("email") else "control"
    assert_problem(response, 400, "VALIDATION_ERROR", (field, reason))
    assert envelope_total(tenant) == before


def test_message_keeps_its_line_breaks(tenant: Tenant) -> None:
    env = draft(tenant, message="Bonjour,\r\n\tmerci de signer.\nCordialement")
    assert env["message"] == "Bonjour,\r\n\tmerci de signer.\nCordialement"


@pytest.mark.parametrize("metadata", [{"k": "v\x00"}, {"k\x00": "v"}], ids=["value", "key"])
def test_nul_in_metadata_is_never_a_server_error(tenant: Tenant, metadata: dict[str, str]) -> None:
    doc = upload(tenant)
    before = envelope_total(tenant)
    response = tenant.client.post("/envelopes", json=body_for(doc["id"], metadata=metadata))
    settle_after_server_error(response)
    assert response.status_code < 500, response.text
    if response.status_code == 201:
        got = tenant.client.get(f"/envelopes/{response.json()['id']}")
        assert got.status_code == 200 and got.json()["metadata"] == metadata
    else:
        assert_problem(response, 400, "VALIDATION_ERROR", ("metadata",))
        assert envelope_total(tenant) == before


def test_nul_in_patch_is_400_and_changes_nothing(tenant: Tenant) -> None:
    env = draft(tenant)
    patched = tenant.client.patch(f"/envelopes/{env['id']}", json={"subject": "x\x00y"})
    assert_problem(patched, 400, "VALIDATION_ERROR", ("subject",))
    assert tenant.client.get(f"/envelopes/{env['id']}").json()["subject"] == env["subject"]


def test_nul_in_void_reason_is_400_and_changes_nothing(tenant: Tenant) -> None:
    env = draft(tenant)
    assert tenant.client.post(f"/envelopes/{env['id']}/send").status_code == 200
    voided = tenant.client.post(f"/envelopes/{env['id']}/void", json={"reason": "r\x00"})
    assert_problem(voided, 400, "VALIDATION_ERROR", ("reason",))
    assert tenant.client.get(f"/envelopes/{env['id']}").json()["status"] == "SENT"


def test_nul_in_key_name_is_400(tenant: Tenant) -> None:
    response = tenant.client.post("/keys", json={"name": "ci\x00bot", "scopes": ["envelopes:read"]})
    assert_problem(response, 400, "VALIDATION_ERROR", ("name",))


def test_another_tenants_document_is_not_found(tenant: Tenant, other_tenant: Tenant) -> None:
    foreign = upload(other_tenant)
    before = envelope_total(tenant)
    response = tenant.client.post("/envelopes", json=body_for(foreign["id"]))
    body = assert_problem(response, (400, 404), mentions=("documentids.0",))
    assert body["code"] in ("VALIDATION_ERROR", "NOT_FOUND")
    assert "not found" in body["error"].lower() or "no document" in body["error"].lower()
    assert envelope_total(tenant) == before


def test_template_id_alone_is_refused_with_4xx(tenant: Tenant) -> None:
    before = envelope_total(tenant)
    response = tenant.client.post(
        "/envelopes",
        json={"subject": "NDA", "templateId": "tpl_nope", "recipients": [recipient()]},
    )
    assert_problem(response, (400, 404), mentions=("templateid",))
    assert envelope_total(tenant) == before


# --- accepted edge values ---------------------------------------------------------------------


def test_tags_are_lowercased_and_deduplicated(tenant: Tenant) -> None:
    env = draft(tenant, tags=["A", "a", " b "])
    assert env["tags"] == ["a", "b"]
    assert tenant.client.get(f"/envelopes/{env['id']}").json()["tags"] == ["a", "b"]


def test_limits_themselves_are_accepted(tenant: Tenant) -> None:
    """The boundaries are inclusive: 100 recipients, 10 tags, a 40-character tag."""
    recipients = [recipient(email=f"r{i}@example.com", name=f"R {i}") for i in range(100)]
    env = draft(tenant, recipients=recipients, tags=[f"t{i}" for i in range(9)] + ["x" * 40])
    assert len(env["recipients"]) == 100
    assert len(env["tags"]) == 10


@pytest.mark.parametrize(
    ("given", "kept"), [("en-GB", "en-GB"), ("nl_BE", "nl-BE"), ("FR", "fr"), ("vi", "vi")]
)
def test_regional_locales_are_accepted_in_canonical_form(
    tenant: Tenant, given: str, kept: str
) -> None:
    assert draft(tenant, locale=given)["locale"] == kept


def test_https_redirect_url_is_kept(tenant: Tenant) -> None:
    env = draft(tenant, redirectUrl="https://example.com/merci?x=1")
    assert env["redirectUrl"] == "https://example.com/merci?x=1"


def test_signature_level_simple_is_accepted(tenant: Tenant) -> None:
    assert draft(tenant, signatureLevel="SIMPLE")["signatureLevel"] == "SIMPLE"


# --- PATCH: refused changes leave the draft as it was -----------------------------------------


@pytest.mark.parametrize(
    ("patch", "mentions"),
    [
        ({"subject": "Nouveau", "recipients": []}, ("recipients",)),
        ({"subject": "Nouveau", "recipients": [recipient(email="bad")]}, ("recipients.0.email",)),
        ({"subject": "Nouveau", "redirectUrl": "javascript:alert(1)"}, ("redirecturl",)),
        ({"subject": "Nouveau", "expiresAt": "1999-12-31T23:59:59Z"}, ("expiresat",)),
        ({"subject": "Nouveau", "expiresAt": "9999-12-31T23:59:59-12:00"}, ("expiresat",)),
        ({"subject": "Nouveau", "metadata": {"x": float("inf")}}, ("metadata",)),
        ({"subject": ""}, ("subject",)),
        ({"subject": "Nouveau", "tags": ["t"] * 11}, ("tags",)),
    ],
)
def test_refused_patch_changes_nothing(
    tenant: Tenant, patch: dict[str, Any], mentions: tuple[str, ...]
) -> None:
    env = draft(tenant)
    response = tenant.client.patch(
        f"/envelopes/{env['id']}",
        content=json.dumps(patch).encode(),  # json.dumps writes NaN/Infinity; httpx would refuse
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 400, "VALIDATION_ERROR", mentions)
    after = tenant.client.get(f"/envelopes/{env['id']}").json()
    assert after["subject"] == env["subject"]
    assert [r["email"] for r in after["recipients"]] == ["client@example.com"]
    assert after["updatedAt"] == env["updatedAt"]


def test_patch_with_json_array_is_400(tenant: Tenant) -> None:
    env = draft(tenant)
    assert_problem(tenant.client.patch(f"/envelopes/{env['id']}", json=[1, 2]), 400)


# --- path tricks ------------------------------------------------------------------------------

WEIRD_IDS = {
    "dotdot-encoded": "..%2F..%2Fetc%2Fpasswd",
    "nul": "%00",
    "10kB": "e" * 10_240,
    "unicode": "env_%C3%A9%F0%9F%98%80%E2%80%AE",
    "valid-shape-unknown": "env_01HG0000000000000000000000",
    "sql": "env_1'%20OR%20'1'='1",
    "percent": "%25",
}


@pytest.mark.parametrize("raw_id", list(WEIRD_IDS.values()), ids=list(WEIRD_IDS))
def test_weird_envelope_ids_are_404(tenant: Tenant, raw_id: str) -> None:
    draft(tenant)  # something of ours exists: it must not come back
    calls = [
        ("GET", f"/envelopes/{raw_id}", None),
        ("PATCH", f"/envelopes/{raw_id}", {"subject": "x"}),
        ("DELETE", f"/envelopes/{raw_id}", None),
        ("POST", f"/envelopes/{raw_id}/send", None),
        ("POST", f"/envelopes/{raw_id}/void", {"reason": "x"}),
        ("GET", f"/envelopes/{raw_id}/signed-document", None),
        ("GET", f"/envelopes/{raw_id}/audit-trail", None),
        ("GET", f"/documents/{raw_id}", None),
        ("GET", f"/documents/{raw_id}/content", None),
        ("DELETE", f"/documents/{raw_id}", None),
    ]
    for method, path, body in calls:
        response = tenant.client.request(method, path, json=body)
        problem = assert_problem(response, 404, "NOT_FOUND")
        assert "root:" not in response.text
        assert len(problem["error"]) < 500, "the message must not echo a huge id"


def test_dot_segments_do_not_reach_another_route(tenant: Tenant) -> None:
    base = tenant.server.base_url
    auth = {"Authorization": f"Bearer {tenant.secret}"}
    for target in (
        "/api/v1/documents/../keys",
        "/api/v1/envelopes/../../../etc/passwd",
        "/api/v1/documents/..%2Fkeys",
    ):
        status, body = raw_request(base, f"GET {target} HTTP/1.1", auth)
        assert status == 404, (target, status, body[:300])
        problem = json.loads(body)
        assert problem["code"] == "NOT_FOUND"
        assert "sk_test_" not in body.decode() and "root:" not in body.decode()


# --- query tricks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("page=99999999999999999999", "page"),
        ("page=1.5", "page"),
        ("limit=0", "limit"),
        ("limit=-5", "limit"),
        ("limit=lots", "limit"),
        ("status=NOPE", "status"),
        ("status=draft%00", "status"),
    ],
)
def test_bad_list_queries_are_400_naming_the_parameter(
    tenant: Tenant, query: str, field: str
) -> None:
    response = tenant.client.get(f"/envelopes?{query}")
    assert_problem(response, 400, "VALIDATION_ERROR", (field,))
    if field != "status":
        assert_problem(tenant.client.get(f"/documents?{query}"), 400, "VALIDATION_ERROR", (field,))


@pytest.mark.parametrize("limit", ["100000", "101", "99999999999999999999"])
def test_huge_limit_is_clamped_to_100(tenant: Tenant, limit: str) -> None:
    draft(tenant)
    for path in ("/envelopes", "/documents", "/keys"):
        response = tenant.client.get(f"{path}?limit={limit}")
        assert response.status_code == 200, response.text
        assert response.json()["pagination"]["pageSize"] == 100


def test_status_filter_and_far_page_are_fine(tenant: Tenant) -> None:
    draft(tenant)
    body = tenant.client.get("/envelopes?status=DRAFT").json()
    assert body["pagination"]["total"] == 1
    assert tenant.client.get("/envelopes?status=SENT").json()["pagination"]["total"] == 0
    far = tenant.client.get("/envelopes?page=1000000")
    assert far.status_code == 200 and far.json()["data"] == []


# --- Authorization header tricks --------------------------------------------------------------


def _bad_headers(secret: str) -> dict[str, dict[str, str]]:
    return {
        "none": {},
        "bearer-only": {"Authorization": "Bearer"},
        "basic": {"Authorization": "Basic xxx"},
        "basic-of-the-key": {
            "Authorization": "Basic " + base64.b64encode(f"{secret}:".encode()).decode()
        },
        "10kB": {"Authorization": "Bearer " + "a" * 10_240},
        "10kB-key-shaped": {"Authorization": "Bearer sk_test_" + "A" * 10_240},
        "wrong-chars": {"Authorization": "Bearer sk_test_" + "!" * 32},
        "wrong-chars-dash": {"Authorization": "Bearer sk_test_" + "-" * 32},
        "unknown-well-formed": {"Authorization": "Bearer sk_test_" + "Z" * 32},
        "other-environment-prefix": {
            "Authorization": "Bearer " + secret.replace("_test_", "_live_")
        },
        "truncated": {"Authorization": "Bearer " + secret[:-1]},
        "token-twice": {"Authorization": f"Bearer {secret} {secret}"},
    }


def test_bad_authorization_headers_are_401_problems(tenant: Tenant) -> None:
    base = f"{tenant.server.base_url}/api/v1"
    with httpx.Client(base_url=base, timeout=30) as anonymous:
        for name, headers in _bad_headers(tenant.secret).items():
            for method, path in (("GET", "/envelopes"), ("POST", "/envelopes")):
                response = anonymous.request(method, path, headers=headers, json={})
                body = assert_problem(response, 401, "UNAUTHORIZED")
                assert tenant.secret not in response.text, name
                assert body["error"], name


@pytest.mark.parametrize(
    "template",
    ["bearer {s}", "BEARER {s}", "Bearer   {s}", "{s}"],
    ids=["lower", "upper", "spaces", "bare"],
)
def test_bearer_prefix_is_case_insensitive_and_optional(tenant: Tenant, template: str) -> None:
    base = f"{tenant.server.base_url}/api/v1"
    with httpx.Client(base_url=base, timeout=30) as client:
        headers = {"Authorization": template.format(s=tenant.secret)}
        assert client.get("/envelopes", headers=headers).status_code == 200


# --- content types ----------------------------------------------------------------------------


def test_envelope_body_in_another_content_type_is_refused(tenant: Tenant) -> None:
    doc = upload(tenant)
    before = envelope_total(tenant)
    text = json.dumps(body_for(doc["id"]))
    as_text = tenant.client.post("/envelopes", content=text, headers={"Content-Type": "text/plain"})
    assert_problem(as_text, (400, 415))
    as_form = tenant.client.post("/envelopes", data={"subject": "x", "documentIds": doc["id"]})
    assert_problem(as_form, (400, 415))
    as_multipart = tenant.client.post(
        "/envelopes", files={"file": ("b.json", text.encode(), "application/json")}
    )
    assert_problem(as_multipart, (400, 415))
    assert envelope_total(tenant) == before


def test_document_upload_in_another_content_type_is_415(tenant: Tenant) -> None:
    before = document_total(tenant.client)
    for content_type in ("text/plain", "application/octet-stream", "image/png", ""):
        response = tenant.client.post(
            "/documents", content=make_pdf(1), headers={"Content-Type": content_type}
        )
        assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE", ("multipart",))
    assert document_total(tenant.client) == before


# --- document uploads -------------------------------------------------------------------------


def test_empty_file_is_400(tenant: Tenant) -> None:
    before = document_total(tenant.client)
    response = tenant.client.post(
        "/documents", files={"file": ("empty.pdf", b"", "application/pdf")}
    )
    assert_problem(response, 400, "VALIDATION_ERROR", ("file", "empty"))
    response = tenant.client.post("/documents", json={"filename": "e.pdf", "contentBase64": ""})
    assert_problem(response, 400, "VALIDATION_ERROR", ("contentbase64", "empty"))
    assert document_total(tenant.client) == before


def test_png_named_pdf_becomes_a_one_page_document_described_as_png(tenant: Tenant) -> None:
    png = png_bytes()
    doc = upload(tenant, png, "scan.pdf")
    assert doc["mimeType"] == "image/png"
    assert doc["pageCount"] == 1
    assert doc["size"] == len(png)
    assert doc["sha256"] == hashlib.sha256(png).hexdigest()
    env = draft(tenant, documentIds=[doc["id"]])
    assert env["documentIds"] == [doc["id"]]


def test_text_file_named_pdf_is_415(tenant: Tenant) -> None:
    before = document_total(tenant.client)
    response = tenant.client.post(
        "/documents",
        files={"file": ("contract.pdf", b"Hello, I am not a PDF.\n" * 20, "application/pdf")},
    )
    assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE", ("pdf",))
    assert document_total(tenant.client) == before


def test_encrypted_pdf_is_refused_saying_password_protected(tenant: Tenant) -> None:
    response = tenant.client.post(
        "/documents", files={"file": ("locked.pdf", encrypted_pdf(), "application/pdf")}
    )
    assert_problem(response, 400, "VALIDATION_ERROR", ("password-protected",))


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_truncated_pdf_is_refused(tenant: Tenant, keep: float) -> None:
    pdf = make_pdf(2)
    response = tenant.client.post(
        "/documents", files={"file": ("cut.pdf", pdf[: int(len(pdf) * keep)], "application/pdf")}
    )
    assert_problem(response, 400, "VALIDATION_ERROR", ("damaged",))


def test_garbage_after_pdf_magic_is_refused(tenant: Tenant) -> None:
    response = tenant.client.post(
        "/documents",
        files={"file": ("x.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 8, "application/pdf")},
    )
    assert_problem(response, 400, "VALIDATION_ERROR", ("file",))


@pytest.mark.parametrize(
    "content", ["!!!not base64!!!", "QUJD\u00e9", "A", "data:application/pdf,%25PDF-1.4"]
)
def test_json_upload_with_bad_base64_is_400(tenant: Tenant, content: str) -> None:
    before = document_total(tenant.client)
    response = tenant.client.post(
        "/documents", json={"filename": "x.pdf", "contentBase64": content}
    )
    assert_problem(response, 400, "VALIDATION_ERROR", ("contentbase64",))
    assert document_total(tenant.client) == before


@pytest.mark.parametrize(
    ("payload", "mentions"),
    [
        ([1, 2], ("object",)),
        ("just a string", ("object",)),
        ({"filename": "x.pdf"}, ("contentbase64",)),
        ({"filename": "x.pdf", "contentBase64": 12345}, ("contentbase64",)),
        ({"filename": ["x.pdf"], "contentBase64": "JVBERi0="}, ("filename",)),
    ],
)
def test_json_upload_with_wrong_shape_is_400(
    tenant: Tenant, payload: Any, mentions: tuple[str, ...]
) -> None:
    response = tenant.client.post("/documents", json=payload)
    assert_problem(response, 400, "VALIDATION_ERROR", mentions)


def test_json_upload_with_bad_json_is_400(tenant: Tenant) -> None:
    response = tenant.client.post(
        "/documents",
        content=b'{"contentBase64": "JVBE',
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 400, "VALIDATION_ERROR", ("json",))


def test_json_upload_accepts_a_data_url_prefix(tenant: Tenant) -> None:
    pdf = make_pdf(3)
    content = "data:application/pdf;base64," + base64.b64encode(pdf).decode()
    response = tenant.client.post(
        "/documents", json={"filename": "d.pdf", "contentBase64": content}
    )
    assert response.status_code == 201, response.text
    doc = response.json()
    assert doc["size"] == len(pdf)
    assert doc["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert doc["pageCount"] == 3
    assert tenant.client.get(f"/documents/{doc['id']}/content").content == pdf


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\evil.pdf", "evil.pdf"),
        ("/abs/path/contrat.pdf", "contrat.pdf"),
    ],
)
def test_path_in_filename_is_dropped(tenant: Tenant, filename: str, expected: str) -> None:
    pdf = make_pdf(1)
    doc = upload(tenant, pdf, filename)
    assert doc["name"] == expected
    assert "/" not in doc["name"] and "\\" not in doc["name"] and ".." not in doc["name"]
    content = tenant.client.get(f"/documents/{doc['id']}/content")
    assert content.status_code == 200 and content.content == pdf
    assert "/" not in content.headers["content-disposition"].split("filename*=")[0]
    # nothing was written next to the data directory under the given path
    data_dir = Path(tenant.server.settings.data_dir)
    assert not (data_dir.parent / "etc" / "passwd").exists()


def test_name_field_of_10kB_is_400(tenant: Tenant) -> None:
    before = document_total(tenant.client)
    multipart = tenant.client.post(
        "/documents",
        files={"file": ("a.pdf", make_pdf(1), "application/pdf")},
        data={"name": "n" * 10_240},
    )
    assert_problem(multipart, 400, "VALIDATION_ERROR", ("name",))
    as_json = tenant.client.post(
        "/documents",
        json={"name": "n" * 10_240, "contentBase64": base64.b64encode(make_pdf(1)).decode()},
    )
    assert_problem(as_json, 400, "VALIDATION_ERROR", ("name",))
    assert document_total(tenant.client) == before


def test_multipart_without_file_part_is_400(tenant: Tenant) -> None:
    response = tenant.client.post(
        "/documents",
        files={"attachment": ("a.pdf", make_pdf(1), "application/pdf")},
        data={"name": "Contrat"},
    )
    assert_problem(response, 400, "VALIDATION_ERROR", ("file",))


def test_broken_multipart_is_400(tenant: Tenant) -> None:
    for body, content_type in (
        (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n\r\n%PDF',
            "multipart/form-data; boundary=b",
        ),
        (b"whatever", "multipart/form-data"),
        (b"--b\r\n\r\nno headers\r\n--b--\r\n", "multipart/form-data; boundary=b"),
    ):
        response = tenant.client.post(
            "/documents", content=body, headers={"Content-Type": content_type}
        )
        assert_problem(response, 400, "VALIDATION_ERROR")


def test_two_file_parts_are_400(tenant: Tenant) -> None:
    response = tenant.client.post(
        "/documents",
        files=[
            ("file", ("a.pdf", make_pdf(1), "application/pdf")),
            ("file", ("b.pdf", make_pdf(1), "application/pdf")),
        ],
    )
    assert_problem(response, 400, "VALIDATION_ERROR", ("file",))


# --- oversize uploads, on an app whose limit is 1 MiB -----------------------------------------


@dataclass
class SmallApp:
    client: httpx.Client


@pytest.fixture(scope="module")
def small_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallApp]:
    data_dir = tmp_path_factory.mktemp("small-limit")
    port = free_port()
    settings = Settings(data_dir=data_dir, port=port, max_upload_mb=1, redis_url=None)
    db = Database(settings.effective_database_url)
    migrations.upgrade(db)

    def work(session):  # type: ignore[no-untyped-def]
        account = accounts.create_account(session, f"small-{uuid.uuid4().hex[:8]}")
        return accounts.create_key(session, account.id, "test", "small").secret

    secret = db.run_sync(work)
    app = create_app(settings, db)
    with (
        uvicorn_thread(app, port) as base,
        httpx.Client(
            base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {secret}"}, timeout=60
        ) as client,
    ):
        yield SmallApp(client)
    db.dispose()


def test_upload_of_exactly_the_limit_is_accepted(small_app: SmallApp) -> None:
    pdf = pdf_of_size(MiB)
    multipart = small_app.client.post(
        "/documents", files={"file": ("max.pdf", pdf, "application/pdf")}
    )
    assert multipart.status_code == 201, multipart.text
    assert multipart.json()["size"] == MiB
    as_json = small_app.client.post(
        "/documents", json={"filename": "max.pdf", "contentBase64": base64.b64encode(pdf).decode()}
    )
    assert as_json.status_code == 201, as_json.text
    assert as_json.json()["size"] == MiB


def test_multipart_upload_above_the_limit_is_413(small_app: SmallApp) -> None:
    before = document_total(small_app.client)
    pdf = pdf_of_size(MiB + 1)
    response = small_app.client.post(
        "/documents", files={"file": ("big.pdf", pdf, "application/pdf")}
    )
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE", ("1 mb",))
    assert document_total(small_app.client) == before


def test_json_base64_upload_above_the_limit_is_413(small_app: SmallApp) -> None:
    before = document_total(small_app.client)
    pdf = pdf_of_size(MiB + 1)
    response = small_app.client.post(
        "/documents", json={"filename": "big.pdf", "contentBase64": base64.b64encode(pdf).decode()}
    )
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE", ("1 mb",))
    much_bigger = base64.b64encode(b"%PDF-1.7\n" + b"0" * (MiB + MiB // 4)).decode()
    response = small_app.client.post(
        "/documents", json={"filename": "bigger.pdf", "contentBase64": much_bigger}
    )
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")
    assert document_total(small_app.client) == before


def test_legacy_one_shot_base64_above_the_limit_is_413(small_app: SmallApp) -> None:
    before = envelope_total_of(small_app.client)
    response = small_app.client.post(
        "/envelopes",
        json={
            "subject": "Big",
            "signers": [{"email": "a@example.com", "name": "A"}],
            "documents": [
                {"name": "big.pdf", "base64Pdf": base64.b64encode(pdf_of_size(MiB + 1)).decode()}
            ],
        },
    )
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")
    assert envelope_total_of(small_app.client) == before


def envelope_total_of(client: httpx.Client) -> int:
    response = client.get("/envelopes")
    assert response.status_code == 200, response.text
    return int(response.json()["pagination"]["total"])


# --- lifecycle conflicts ----------------------------------------------------------------------


def sent(tenant: Tenant) -> dict[str, Any]:
    env = draft(tenant)
    response = tenant.client.post(f"/envelopes/{env['id']}/send")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "SENT"
    return response.json()


def test_patch_on_sent_envelope_is_409_saying_why(tenant: Tenant) -> None:
    env = sent(tenant)
    response = tenant.client.patch(f"/envelopes/{env['id']}", json={"subject": "Changed"})
    assert_problem(response, 409, "CONFLICT", ("sent", "draft"))
    assert tenant.client.get(f"/envelopes/{env['id']}").json()["subject"] == env["subject"]


def test_delete_on_sent_envelope_is_409(tenant: Tenant) -> None:
    env = sent(tenant)
    response = tenant.client.delete(f"/envelopes/{env['id']}")
    assert_problem(response, 409, "CONFLICT", ("sent", "void"))
    got = tenant.client.get(f"/envelopes/{env['id']}")
    assert got.status_code == 200 and got.json()["status"] == "SENT"


def test_send_twice_is_409(tenant: Tenant) -> None:
    env = sent(tenant)
    response = tenant.client.post(f"/envelopes/{env['id']}/send")
    assert_problem(response, 409, "CONFLICT", ("sent",))


def test_void_a_draft_is_409(tenant: Tenant) -> None:
    env = draft(tenant)
    response = tenant.client.post(f"/envelopes/{env['id']}/void", json={"reason": "oops"})
    assert_problem(response, 409, "CONFLICT", ("draft", "delete"))
    assert tenant.client.get(f"/envelopes/{env['id']}").json()["status"] == "DRAFT"


def test_void_a_sent_envelope_echoes_the_reason(tenant: Tenant) -> None:
    env = sent(tenant)
    response = tenant.client.post(
        f"/envelopes/{env['id']}/void", json={"reason": "Mauvais montant"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "VOIDED"
    assert response.json()["voidReason"] == "Mauvais montant"
    got = tenant.client.get(f"/envelopes/{env['id']}").json()
    assert got["status"] == "VOIDED" and got["voidReason"] == "Mauvais montant"
    again = tenant.client.post(f"/envelopes/{env['id']}/void", json={"reason": "twice"})
    assert_problem(again, 409, "CONFLICT", ("voided",))
    assert tenant.client.get(f"/envelopes/{env['id']}").json()["voidReason"] == "Mauvais montant"


def test_void_with_hostile_reason_is_400(tenant: Tenant) -> None:
    env = sent(tenant)
    for body in ({"reason": "r" * 10_000}, {"reason": 42}, [1]):
        response = tenant.client.post(f"/envelopes/{env['id']}/void", json=body)
        assert_problem(response, 400, "VALIDATION_ERROR")
    assert tenant.client.get(f"/envelopes/{env['id']}").json()["status"] == "SENT"


def test_signed_document_and_audit_trail_before_completion_are_409(tenant: Tenant) -> None:
    env = sent(tenant)
    for what in ("signed-document", "audit-trail"):
        response = tenant.client.get(f"/envelopes/{env['id']}/{what}")
        assert_problem(response, 409, "CONFLICT", ("sent",))


# --- routes and methods -----------------------------------------------------------------------


def test_unknown_route_is_404_problem(tenant: Tenant) -> None:
    for path in ("/nope", "/envelopes/x/y/z", "/../../etc/passwd"):
        assert_problem(tenant.client.get(path), 404, "NOT_FOUND")
    with httpx.Client(base_url=tenant.server.base_url, timeout=30) as root:
        assert_problem(root.get("/definitely-not-here"), 404, "NOT_FOUND")


def test_wrong_method_is_405_problem(tenant: Tenant) -> None:
    env = draft(tenant)
    for method, path in (
        ("PUT", "/envelopes"),
        ("DELETE", "/envelopes"),
        ("PUT", f"/envelopes/{env['id']}"),
        ("GET", f"/envelopes/{env['id']}/send"),
        ("PATCH", "/documents"),
    ):
        response = tenant.client.request(method, path)
        assert_problem(response, 405, mentions=())
        assert response.headers.get("allow"), (method, path)
    assert tenant.client.get(f"/envelopes/{env['id']}").json()["status"] == "DRAFT"
