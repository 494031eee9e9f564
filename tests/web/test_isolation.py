"""Tenant, environment and scope isolation through the real HTTP app, and the API-key routes.

Another account's objects, and the other environment's objects of the same account, are simply
not found (404, absent from lists); a key's scopes bound what it may do (403); keys are shown
without their secret and a revoked key fails on the very next request.
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Any

import httpx
import pytest

from tests.conftest import Tenant, draft, make_pdf, upload
from tests.support.problems import assert_problem


def ids_in(client: httpx.Client, path: str) -> set[str]:
    response = client.get(f"{path}?limit=100")
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["data"]}


def sent(tenant: Tenant, client: httpx.Client | None = None) -> dict[str, Any]:
    client = client or tenant.client
    doc = client.post("/documents", files={"file": ("c.pdf", make_pdf(1), "application/pdf")})
    assert doc.status_code == 201, doc.text
    created = client.post(
        "/envelopes",
        json={
            "subject": "Bon de commande",
            "documentIds": [doc.json()["id"]],
            "recipients": [{"email": "signer@example.com", "name": "S"}],
        },
    )
    assert created.status_code == 201, created.text
    response = client.post(f"/envelopes/{created.json()['id']}/send")
    assert response.status_code == 200, response.text
    return response.json()


def foreign_envelope_calls(env_id: str) -> list[tuple[str, str, Any]]:
    return [
        ("GET", f"/envelopes/{env_id}", None),
        ("PATCH", f"/envelopes/{env_id}", {"subject": "Hijacked"}),
        ("POST", f"/envelopes/{env_id}/send", None),
        ("POST", f"/envelopes/{env_id}/void", {"reason": "Hijacked"}),
        ("GET", f"/envelopes/{env_id}/signed-document", None),
        ("GET", f"/envelopes/{env_id}/audit-trail", None),
        ("DELETE", f"/envelopes/{env_id}", None),
    ]


def assert_cannot_reach_envelope(client: httpx.Client, env_id: str) -> None:
    for method, path, body in foreign_envelope_calls(env_id):
        response = client.request(method, path, json=body)
        problem = assert_problem(response, 404, "NOT_FOUND")
        assert "Hijacked" not in response.text
        assert problem["error"], (method, path)
    assert env_id not in ids_in(client, "/envelopes")
    for status in ("DRAFT", "SENT", "VOIDED"):
        listed = client.get(f"/envelopes?status={status}").json()["data"]
        assert env_id not in {e["id"] for e in listed}


def assert_cannot_reach_document(client: httpx.Client, doc_id: str) -> None:
    for method, path in (
        ("GET", f"/documents/{doc_id}"),
        ("GET", f"/documents/{doc_id}/content"),
        ("DELETE", f"/documents/{doc_id}"),
    ):
        response = client.request(method, path)
        assert_problem(response, 404, "NOT_FOUND")
        assert not response.content.startswith(b"%PDF")
    assert doc_id not in ids_in(client, "/documents")


# --- another account --------------------------------------------------------------------------


def test_another_accounts_draft_is_not_found(tenant: Tenant, other_tenant: Tenant) -> None:
    env = draft(other_tenant)
    assert_cannot_reach_envelope(tenant.client, env["id"])
    still = other_tenant.client.get(f"/envelopes/{env['id']}")
    assert still.status_code == 200
    assert still.json()["status"] == "DRAFT"
    assert still.json()["subject"] == env["subject"]


def test_another_accounts_sent_envelope_is_not_found(tenant: Tenant, other_tenant: Tenant) -> None:
    env = sent(other_tenant)
    assert_cannot_reach_envelope(tenant.client, env["id"])
    still = other_tenant.client.get(f"/envelopes/{env['id']}").json()
    assert still["status"] == "SENT"
    assert "voidReason" not in still


def test_another_accounts_document_is_not_found(tenant: Tenant, other_tenant: Tenant) -> None:
    doc = upload(other_tenant)
    assert_cannot_reach_document(tenant.client, doc["id"])
    used = tenant.client.post(
        "/envelopes",
        json={
            "subject": "Steal",
            "documentIds": [doc["id"]],
            "recipients": [{"email": "a@example.com"}],
        },
    )
    assert used.status_code in (400, 404), used.text
    assert other_tenant.client.get(f"/documents/{doc['id']}").status_code == 200
    content = other_tenant.client.get(f"/documents/{doc['id']}/content")
    assert content.status_code == 200 and content.content.startswith(b"%PDF")


def test_lists_show_only_the_callers_objects(tenant: Tenant, other_tenant: Tenant) -> None:
    mine = draft(tenant)
    theirs = draft(other_tenant)
    assert ids_in(tenant.client, "/envelopes") == {mine["id"]}
    assert ids_in(other_tenant.client, "/envelopes") == {theirs["id"]}
    assert ids_in(tenant.client, "/documents") == set(mine["documentIds"])
    assert tenant.client.get("/envelopes").json()["pagination"]["total"] == 1


def test_another_accounts_key_cannot_be_seen_or_revoked(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    assert other_tenant.key_id not in ids_in(tenant.client, "/keys")
    assert tenant.key_id in ids_in(tenant.client, "/keys")
    response = tenant.client.delete(f"/keys/{other_tenant.key_id}")
    assert_problem(response, 404, "NOT_FOUND")
    assert other_tenant.client.get("/envelopes").status_code == 200
    assert_problem(tenant.client.delete("/keys/key_01HG0000000000000000000000"), 404, "NOT_FOUND")


# --- test and live of one account -------------------------------------------------------------


def test_live_key_cannot_see_test_objects(tenant: Tenant) -> None:
    env = draft(tenant)
    live = tenant.client_for(tenant.new_key("live"))
    with live:
        assert_cannot_reach_envelope(live, env["id"])
        assert_cannot_reach_document(live, env["documentIds"][0])
        assert live.get("/envelopes").json()["pagination"]["total"] == 0
        assert live.get("/documents").json()["pagination"]["total"] == 0
    assert tenant.client.get(f"/envelopes/{env['id']}").json()["status"] == "DRAFT"


def test_test_key_cannot_see_live_objects(tenant: Tenant) -> None:
    live = tenant.client_for(tenant.new_key("live"))
    with live:
        env = sent(tenant, live)
        assert env["environment"] == "live"
        doc_id = env["documentIds"][0]
        assert_cannot_reach_envelope(tenant.client, env["id"])
        assert_cannot_reach_document(tenant.client, doc_id)
        assert tenant.client.get("/envelopes").json()["pagination"]["total"] == 0
        assert tenant.client.get("/documents").json()["pagination"]["total"] == 0
        # the live side still has it, untouched
        got = live.get(f"/envelopes/{env['id']}")
        assert got.status_code == 200 and got.json()["status"] == "SENT"
        assert ids_in(live, "/envelopes") == {env["id"]}


def test_keys_of_the_other_environment_are_not_listed_nor_revocable(tenant: Tenant) -> None:
    live_secret = tenant.new_key("live")
    live = tenant.client_for(live_secret)
    with live:
        live_ids = ids_in(live, "/keys")
        test_ids = ids_in(tenant.client, "/keys")
        assert tenant.key_id in test_ids and tenant.key_id not in live_ids
        assert not live_ids & test_ids
        (live_key_id,) = live_ids
        assert_problem(tenant.client.delete(f"/keys/{live_key_id}"), 404, "NOT_FOUND")
        assert live.get("/envelopes").status_code == 200


# --- scopes -----------------------------------------------------------------------------------


def test_read_only_key_can_read_but_not_write(tenant: Tenant) -> None:
    env = draft(tenant)
    doc_id = env["documentIds"][0]
    read_only = tenant.client_for(tenant.new_key("test", ["envelopes:read"]))
    with read_only:
        refused = [
            (
                "POST",
                "/envelopes",
                {
                    "subject": "x",
                    "documentIds": [doc_id],
                    "recipients": [{"email": "a@example.com"}],
                },
            ),
            ("PATCH", f"/envelopes/{env['id']}", {"subject": "Changed"}),
            ("DELETE", f"/envelopes/{env['id']}", None),
            ("POST", f"/envelopes/{env['id']}/send", None),
            ("POST", f"/envelopes/{env['id']}/void", {"reason": "x"}),
            ("DELETE", f"/documents/{doc_id}", None),
        ]
        for method, path, body in refused:
            response = read_only.request(method, path, json=body)
            problem = assert_problem(response, 403, "FORBIDDEN")
            assert problem["error"] == "Insufficient scope: envelopes:write required", problem
        upload_refused = read_only.post(
            "/documents", files={"file": ("a.pdf", make_pdf(1), "application/pdf")}
        )
        assert_problem(upload_refused, 403, "FORBIDDEN")
        for path in ("/envelopes", f"/envelopes/{env['id']}", "/documents", f"/documents/{doc_id}"):
            assert read_only.get(path).status_code == 200, path
        keys = read_only.get("/keys")
        assert assert_problem(keys, 403, "FORBIDDEN")["error"] == (
            "Insufficient scope: keys:write required"
        )
    after = tenant.client.get(f"/envelopes/{env['id']}").json()
    assert after["status"] == "DRAFT" and after["subject"] == env["subject"]
    assert tenant.client.get("/envelopes").json()["pagination"]["total"] == 1
    assert tenant.client.get("/documents").json()["pagination"]["total"] == 1


def test_write_only_key_cannot_read(tenant: Tenant) -> None:
    env = draft(tenant)
    write_only = tenant.client_for(tenant.new_key("test", ["envelopes:write"]))
    with write_only:
        for path in ("/envelopes", f"/envelopes/{env['id']}", "/documents"):
            problem = assert_problem(write_only.get(path), 403, "FORBIDDEN")
            assert problem["error"] == "Insufficient scope: envelopes:read required"


def test_keys_routes_need_keys_write(tenant: Tenant) -> None:
    no_keys = tenant.client_for(tenant.new_key("test", ["envelopes:read", "envelopes:write"]))
    with no_keys:
        for method, path, body in (
            ("GET", "/keys", None),
            ("POST", "/keys", {"name": "x", "scopes": ["envelopes:read"]}),
            ("DELETE", f"/keys/{tenant.key_id}", None),
        ):
            problem = assert_problem(no_keys.request(method, path, json=body), 403, "FORBIDDEN")
            assert "keys:write" in problem["error"]
    assert tenant.client.get("/envelopes").status_code == 200  # not revoked


def test_a_key_cannot_mint_more_than_it_has(tenant: Tenant) -> None:
    minter = tenant.client_for(tenant.new_key("test", ["envelopes:read", "keys:write"]))
    with minter:
        before = ids_in(tenant.client, "/keys")
        wider = minter.post("/keys", json={"name": "wider", "scopes": ["envelopes:write"]})
        assert "envelopes:write" in assert_problem(wider, 403, "FORBIDDEN")["error"]
        other_env = minter.post(
            "/keys", json={"name": "live", "environment": "live", "scopes": ["envelopes:read"]}
        )
        assert_problem(other_env, 403, "FORBIDDEN")
        assert ids_in(tenant.client, "/keys") == before
        narrower = minter.post("/keys", json={"name": "narrow", "scopes": ["envelopes:read"]})
        assert narrower.status_code == 201, narrower.text
        assert narrower.json()["scopes"] == ["envelopes:read"]
        assert narrower.json()["environment"] == "test"


def test_unknown_scope_is_400(tenant: Tenant) -> None:
    response = tenant.client.post("/keys", json={"name": "x", "scopes": ["admin:everything"]})
    assert_problem(response, 400, "VALIDATION_ERROR")


# --- keys: create, list, revoke ---------------------------------------------------------------


def test_created_key_shows_its_secret_once(tenant: Tenant) -> None:
    response = tenant.client.post(
        "/keys", json={"name": "CI pipeline", "scopes": ["envelopes:read", "envelopes:write"]}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    secret = created["secret"]
    assert created["id"].startswith("key_")
    assert secret.startswith("sk_test_")

    with tenant.client_for(secret) as new_client:
        assert new_client.get("/envelopes").status_code == 200

    listing = tenant.client.get("/keys")
    assert listing.status_code == 200
    assert secret not in listing.text
    assert secret[10:-4] not in listing.text
    (item,) = [k for k in listing.json()["data"] if k["id"] == created["id"]]
    assert not any("secret" in k.lower() or "hash" in k.lower() for k in item)
    assert item["prefix"] == secret[: len(item["prefix"])] and item["prefix"].startswith("sk_test_")
    assert item["last4"] == secret[-4:]
    assert item["name"] == "CI pipeline"
    assert item["environment"] == "test"
    assert item["scopes"] == ["envelopes:read", "envelopes:write"]
    assert item["createdAt"].endswith("Z")
    assert item["lastUsedAt"] is not None and item["lastUsedAt"].endswith("Z")  # used above
    assert "revokedAt" in item and item["revokedAt"] is None
    assert {"data", "pagination"} <= set(listing.json())


def test_revoked_key_fails_on_the_very_next_request(tenant: Tenant) -> None:
    created = tenant.client.post("/keys", json={"name": "temp", "scopes": ["envelopes:read"]})
    assert created.status_code == 201
    key_id, secret = created.json()["id"], created.json()["secret"]
    with tenant.client_for(secret) as doomed:
        assert doomed.get("/envelopes").status_code == 200  # now cached by the authenticator
        revoked = tenant.client.delete(f"/keys/{key_id}")
        assert revoked.status_code == 200 and revoked.json() == {"success": True}
        assert_problem(doomed.get("/envelopes"), 401, "UNAUTHORIZED")
        assert_problem(doomed.get("/envelopes"), 401, "UNAUTHORIZED")
    (item,) = [k for k in tenant.client.get("/keys").json()["data"] if k["id"] == key_id]
    assert item["revokedAt"] is not None
    assert tenant.client.get("/envelopes").status_code == 200  # the revoker is fine


def test_a_key_may_revoke_itself(tenant: Tenant) -> None:
    secret = tenant.new_key("test", ["keys:write", "envelopes:read"])
    with tenant.client_for(secret) as itself:
        own = [k for k in itself.get("/keys").json()["data"] if k["last4"] == secret[-4:]]
        assert len(own) == 1
        assert itself.delete(f"/keys/{own[0]['id']}").status_code == 200
        assert_problem(itself.get("/envelopes"), 401, "UNAUTHORIZED")


# --- 401s and the rate-limit budget -----------------------------------------------------------


def test_401s_are_problems_and_spend_no_budget(tenant: Tenant) -> None:
    revoked = tenant.new_key("test")
    with tenant.client_for(revoked) as c:
        assert c.get("/envelopes").status_code == 200
        key_id = next(
            k["id"] for k in tenant.client.get("/keys").json()["data"] if k["last4"] == revoked[-4:]
        )
    assert tenant.client.delete(f"/keys/{key_id}").status_code == 200

    fresh = tenant.new_key("test")
    base = f"{tenant.server.base_url}/api/v1"
    bad_headers = [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Bearer sk_test_" + "Q" * 32},
        {"Authorization": f"Bearer {fresh[:-1]}{'Y' if fresh.endswith('X') else 'X'}"},
        {"Authorization": f"Bearer {revoked}"},
    ]
    with httpx.Client(base_url=base, timeout=30) as anonymous:
        for i in range(50):
            response = anonymous.get("/envelopes", headers=bad_headers[i % len(bad_headers)])
            assert_problem(response, 401, "UNAUTHORIZED")
            assert "ratelimit-remaining" not in response.headers
    with tenant.client_for(fresh) as good:
        first = good.get("/envelopes")
        assert first.status_code == 200
        assert first.headers["RateLimit-Remaining"] == "199"
        assert first.headers["RateLimit-Limit"] == "100"


def test_every_authenticated_answer_carries_ratelimit_headers(tenant: Tenant) -> None:
    secret = tenant.new_key("test")
    env = draft(tenant)
    started = time.monotonic()
    with tenant.client_for(secret) as client:
        answers = [
            client.get("/envelopes"),  # 200
            client.post("/envelopes", json={"subject": 1}),  # 400
            client.get("/envelopes/env_01HG0000000000000000000000"),  # 404
            client.post(f"/envelopes/{env['id']}/send"),  # 200
            client.post(f"/envelopes/{env['id']}/send"),  # 409
            client.delete(f"/envelopes/{env['id']}"),  # 409
            client.get("/envelopes?page=0"),  # 400 (query)
            client.post("/documents", files={"file": ("a.pdf", make_pdf(1), "application/pdf")}),
            client.post("/documents", content=b"x", headers={"Content-Type": "text/plain"}),
        ]
    elapsed = time.monotonic() - started
    statuses = [a.status_code for a in answers]
    assert statuses == [200, 400, 404, 200, 409, 409, 400, 201, 415]
    remaining = []
    for answer in answers:
        assert answer.headers["RateLimit-Limit"] == "100", answer.status_code
        assert int(answer.headers["RateLimit-Reset"]) >= 0
        remaining.append(int(answer.headers["RateLimit-Remaining"]))
    # each answer spent one token; the real clock may have refilled one every 0.6 s meanwhile
    assert remaining[0] == 199
    refilled = math.ceil(elapsed / 0.6)
    spent = len(answers) - 1
    assert 199 - spent <= remaining[-1] <= 199 - spent + refilled, (remaining, elapsed)
    if refilled <= 1:
        steps = [b - a for a, b in itertools.pairwise(remaining)]
        assert all(step in (-1, 0) for step in steps) and steps.count(0) <= 1, remaining

    scoped = tenant.client_for(tenant.new_key("test", ["envelopes:read"]))
    with scoped:
        forbidden = scoped.post("/envelopes", json={})
        assert forbidden.status_code == 403
        assert forbidden.headers["RateLimit-Limit"] == "100"
        assert forbidden.headers["RateLimit-Remaining"] == "199"


@pytest.mark.parametrize("path", ["/envelopes", "/documents", "/keys", "/account/me"])
def test_401_on_every_route_family(tenant: Tenant, path: str) -> None:
    with httpx.Client(base_url=f"{tenant.server.base_url}/api/v1", timeout=30) as anonymous:
        assert_problem(anonymous.get(path), 401, "UNAUTHORIZED")


def _malformed_json_calls(env_id: str) -> list[tuple[str, str]]:
    return [
        ("POST", "/envelopes"),
        ("PATCH", f"/envelopes/{env_id}"),
        ("POST", f"/envelopes/{env_id}/void"),
        ("POST", "/keys"),
    ]


def test_malformed_json_without_a_key_is_401(tenant: Tenant) -> None:
    """The key is checked before the body is read: no feedback on bodies to strangers."""
    env = draft(tenant)
    with httpx.Client(base_url=f"{tenant.server.base_url}/api/v1", timeout=30) as anonymous:
        for method, path in _malformed_json_calls(env["id"]):
            response = anonymous.request(
                method, path, content=b"{not json", headers={"Content-Type": "application/json"}
            )
            assert_problem(response, 401, "UNAUTHORIZED")


def test_malformed_json_with_a_key_is_counted_and_carries_ratelimit_headers(
    tenant: Tenant,
) -> None:
    env = draft(tenant)
    with tenant.client_for(tenant.new_key("test")) as client:
        for i, (method, path) in enumerate(_malformed_json_calls(env["id"])):
            response = client.request(
                method, path, content=b"{not json", headers={"Content-Type": "application/json"}
            )
            assert_problem(response, 400, "VALIDATION_ERROR")
            assert response.headers.get("RateLimit-Limit") == "100", (method, path)
            assert int(response.headers["RateLimit-Remaining"]) <= 199 - i
