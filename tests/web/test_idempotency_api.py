"""``Idempotency-Key`` on POST /envelopes, POST /documents and POST /envelopes/{id}/send,
through the real HTTP app: a retry replays the first answer and creates nothing more."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx

from tests.conftest import Tenant, draft, make_pdf, upload
from tests.support.problems import PROBLEM, settle_after_server_error


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    settle_after_server_error(response)
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["code"] == code and body["status"] == status, body
    assert body["error"]
    return body


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"test-{uuid.uuid4()}"}


def total(client: httpx.Client, path: str) -> int:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return int(response.json()["pagination"]["total"])


def envelope_body(doc_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "subject": "Contrat de prestation",
        "documentIds": [doc_id],
        "recipients": [{"email": "client@example.com", "name": "Marie Dubois"}],
        **overrides,
    }


# --- POST /envelopes --------------------------------------------------------------------------


def test_same_key_and_body_replays_the_first_envelope(tenant: Tenant) -> None:
    doc = upload(tenant)
    headers = key()
    body = envelope_body(doc["id"])
    first = tenant.client.post("/envelopes", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    for _ in range(3):
        again = tenant.client.post("/envelopes", json=body, headers=headers)
        assert again.status_code == 201
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]
        assert again.json() == first.json()
    assert total(tenant.client, "/envelopes") == 1


def test_without_a_key_each_post_creates_another(tenant: Tenant) -> None:
    doc = upload(tenant)
    body = envelope_body(doc["id"])
    a = tenant.client.post("/envelopes", json=body)
    b = tenant.client.post("/envelopes", json=body)
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]
    assert total(tenant.client, "/envelopes") == 2


def test_same_key_with_another_body_is_409(tenant: Tenant) -> None:
    doc = upload(tenant)
    headers = key()
    first = tenant.client.post("/envelopes", json=envelope_body(doc["id"]), headers=headers)
    assert first.status_code == 201
    other = tenant.client.post(
        "/envelopes", json=envelope_body(doc["id"], subject="Autre chose"), headers=headers
    )
    problem = assert_problem(other, 409, "IDEMPOTENCY_KEY_REUSED")
    assert "idempotency" in problem["error"].lower()
    assert total(tenant.client, "/envelopes") == 1
    got = tenant.client.get(f"/envelopes/{first.json()['id']}").json()
    assert got["subject"] == "Contrat de prestation"


def test_same_key_on_another_route_is_409(tenant: Tenant) -> None:
    headers = key()
    env = tenant.client.post(
        "/envelopes", json=envelope_body(upload(tenant)["id"]), headers=headers
    )
    assert env.status_code == 201
    doc = tenant.client.post(
        "/documents", files={"file": ("a.pdf", make_pdf(1), "application/pdf")}, headers=headers
    )
    assert_problem(doc, 409, "IDEMPOTENCY_KEY_REUSED")


def test_same_key_for_another_tenant_is_independent(tenant: Tenant, other_tenant: Tenant) -> None:
    headers = key()
    mine = tenant.client.post(
        "/envelopes", json=envelope_body(upload(tenant)["id"]), headers=headers
    )
    theirs = other_tenant.client.post(
        "/envelopes", json=envelope_body(upload(other_tenant)["id"]), headers=headers
    )
    assert mine.status_code == theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]
    assert total(other_tenant.client, "/envelopes") == 1
    # and the same body under the same key for a third party is no replay of the first
    assert other_tenant.client.get(f"/envelopes/{mine.json()['id']}").status_code == 404


def test_same_key_in_the_other_environment_is_independent(tenant: Tenant) -> None:
    headers = key()
    test_env = tenant.client.post(
        "/envelopes", json=envelope_body(upload(tenant)["id"]), headers=headers
    )
    assert test_env.status_code == 201
    with tenant.client_for(tenant.new_key("live")) as live:
        doc = live.post("/documents", files={"file": ("a.pdf", make_pdf(1), "application/pdf")})
        assert doc.status_code == 201
        live_env = live.post("/envelopes", json=envelope_body(doc.json()["id"]), headers=headers)
        assert live_env.status_code == 201, live_env.text
        assert "idempotent-replayed" not in live_env.headers
        assert live_env.json()["environment"] == "live"


def test_a_schema_400_does_not_burn_the_key(tenant: Tenant) -> None:
    doc = upload(tenant)
    headers = key()
    bad = tenant.client.post(
        "/envelopes",
        json=envelope_body(doc["id"], recipients=[{"email": "not-an-email"}]),
        headers=headers,
    )
    assert_problem(bad, 400, "VALIDATION_ERROR")
    good = tenant.client.post("/envelopes", json=envelope_body(doc["id"]), headers=headers)
    assert good.status_code == 201, good.text
    assert "idempotent-replayed" not in good.headers
    assert total(tenant.client, "/envelopes") == 1


def test_a_service_400_does_not_burn_the_key(tenant: Tenant) -> None:
    doc = upload(tenant)
    headers = key()
    bad = tenant.client.post(
        "/envelopes",
        json=envelope_body("doc_01HG0000000000000000000000"),
        headers=headers,
    )
    assert_problem(bad, 400, "VALIDATION_ERROR")
    good = tenant.client.post("/envelopes", json=envelope_body(doc["id"]), headers=headers)
    assert good.status_code == 201, good.text
    assert "idempotent-replayed" not in good.headers
    replay = tenant.client.post("/envelopes", json=envelope_body(doc["id"]), headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == good.json()["id"]
    assert total(tenant.client, "/envelopes") == 1


def test_overlong_key_is_400(tenant: Tenant) -> None:
    doc = upload(tenant)
    response = tenant.client.post(
        "/envelopes", json=envelope_body(doc["id"]), headers={"Idempotency-Key": "k" * 300}
    )
    problem = assert_problem(response, 400, "VALIDATION_ERROR")
    assert "idempotency-key" in problem["error"].lower()
    assert total(tenant.client, "/envelopes") == 0
    at_limit = tenant.client.post(
        "/envelopes", json=envelope_body(doc["id"]), headers={"Idempotency-Key": "k" * 255}
    )
    assert at_limit.status_code == 201, at_limit.text


def test_empty_key_is_400(tenant: Tenant) -> None:
    doc = upload(tenant)
    response = tenant.client.post(
        "/envelopes", json=envelope_body(doc["id"]), headers={"Idempotency-Key": ""}
    )
    assert_problem(response, 400, "VALIDATION_ERROR")
    assert total(tenant.client, "/envelopes") == 0


# --- POST /documents --------------------------------------------------------------------------


def test_document_upload_is_replayed(tenant: Tenant) -> None:
    headers = key()
    pdf = make_pdf(2)
    first = tenant.client.post(
        "/documents", files={"file": ("c.pdf", pdf, "application/pdf")}, headers=headers
    )
    assert first.status_code == 201, first.text
    again = tenant.client.post(
        "/documents", files={"file": ("c.pdf", pdf, "application/pdf")}, headers=headers
    )
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert total(tenant.client, "/documents") == 1


def test_document_upload_with_another_file_under_the_same_key_is_409(tenant: Tenant) -> None:
    headers = key()
    first = tenant.client.post(
        "/documents", files={"file": ("c.pdf", make_pdf(1), "application/pdf")}, headers=headers
    )
    assert first.status_code == 201
    other = tenant.client.post(
        "/documents", files={"file": ("c.pdf", make_pdf(3), "application/pdf")}, headers=headers
    )
    assert_problem(other, 409, "IDEMPOTENCY_KEY_REUSED")
    assert total(tenant.client, "/documents") == 1


def test_json_document_upload_is_replayed(tenant: Tenant) -> None:
    headers = key()
    body = {"filename": "c.pdf", "contentBase64": base64.b64encode(make_pdf(1)).decode()}
    first = tenant.client.post("/documents", json=body, headers=headers)
    again = tenant.client.post("/documents", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert total(tenant.client, "/documents") == 1


def test_failed_upload_does_not_burn_the_key(tenant: Tenant) -> None:
    headers = key()
    bad = tenant.client.post(
        "/documents", files={"file": ("c.pdf", b"not a pdf", "application/pdf")}, headers=headers
    )
    assert_problem(bad, 415, "UNSUPPORTED_MEDIA_TYPE")
    good = tenant.client.post(
        "/documents", files={"file": ("c.pdf", make_pdf(1), "application/pdf")}, headers=headers
    )
    assert good.status_code == 201, good.text
    assert "idempotent-replayed" not in good.headers


# --- POST /envelopes/{id}/send ----------------------------------------------------------------


def test_send_is_replayed_instead_of_409(tenant: Tenant) -> None:
    env = draft(tenant)
    headers = key()
    first = tenant.client.post(f"/envelopes/{env['id']}/send", headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "SENT"
    again = tenant.client.post(f"/envelopes/{env['id']}/send", headers=headers)
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    # a send under a new key is a new request: the lifecycle refuses it
    assert_problem(
        tenant.client.post(f"/envelopes/{env['id']}/send", headers=key()), 409, "CONFLICT"
    )
    assert tenant.client.get(f"/envelopes/{env['id']}").json()["status"] == "SENT"


def test_send_key_reused_for_another_envelope_is_409(tenant: Tenant) -> None:
    a, b = draft(tenant), draft(tenant)
    headers = key()
    assert tenant.client.post(f"/envelopes/{a['id']}/send", headers=headers).status_code == 200
    other = tenant.client.post(f"/envelopes/{b['id']}/send", headers=headers)
    assert_problem(other, 409, "IDEMPOTENCY_KEY_REUSED")
    assert tenant.client.get(f"/envelopes/{b['id']}").json()["status"] == "DRAFT"


def test_failed_send_does_not_burn_the_key(tenant: Tenant) -> None:
    env = draft(tenant)
    headers = key()
    missing = tenant.client.post("/envelopes/env_01HG0000000000000000000000/send", headers=headers)
    assert_problem(missing, 404, "NOT_FOUND")
    # had the failure kept the key, this other request under it would be IDEMPOTENCY_KEY_REUSED
    sent = tenant.client.post(f"/envelopes/{env['id']}/send", headers=headers)
    assert sent.status_code == 200, sent.text
    assert "idempotent-replayed" not in sent.headers
    assert sent.json()["status"] == "SENT"


def test_concurrent_retries_create_one_envelope(tenant: Tenant) -> None:
    from concurrent.futures import ThreadPoolExecutor

    doc = upload(tenant)
    headers = {**key(), "Authorization": f"Bearer {tenant.secret}"}
    body = envelope_body(doc["id"])
    base = f"{tenant.server.base_url}/api/v1"

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=base, timeout=30) as client:
            return client.post("/envelopes", json=body, headers=headers)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(8)))
    created = [a for a in answers if a.status_code == 201]
    busy = [a for a in answers if a.status_code != 201]
    assert created, [a.text for a in answers]
    assert len({a.json()["id"] for a in created}) == 1
    assert sum("idempotent-replayed" not in a.headers for a in created) == 1
    for answer in busy:  # a retry that overlapped the first run is told to retry, nothing more
        assert_problem(answer, 409, "CONFLICT")
    assert total(tenant.client, "/envelopes") == 1
