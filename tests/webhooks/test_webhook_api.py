"""``/api/v1/webhooks`` over real HTTP (the shared ``server`` fixture, SSRF guard ON).

The shared app runs with ``webhook_allow_private`` False, so these tests are about the rules of
registration and the shapes of the answers; real deliveries are in ``test_delivery_e2e``.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import Server, Tenant, draft, new_tenant

REJECTED = "URL rejected: private or loopback address"
PUBLIC_NAME = "https://hooks.example.com/x"  # does not resolve here: accepted, checked later
ALL_EVENTS = [
    "envelope.created",
    "envelope.sent",
    "envelope.completed",
    "envelope.declined",
    "envelope.voided",
    "envelope.expired",
    "envelope.returned_to_sender",
    "envelope.resubmitted",
    "recipient.signed",
    "recipient.viewed",
    "recipient.approved",
]


def register(client: httpx.Client, url: str = PUBLIC_NAME, events=None, **extra) -> dict:
    response = client.post(
        "/webhooks", json={"url": url, "events": events or ["envelope.created"], **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()


def assert_problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"]
    return body


@pytest.fixture
def live_client(tenant: Tenant):
    client = tenant.client_for(tenant.new_key("live"))
    yield client
    client.close()


# ---------------------------------------------------------------- registration rules


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost:8080/hook",
        "http://[::1]/hook",
        "http://10.0.0.5/hook",
        "http://172.16.3.4/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_private_and_loopback_refused(tenant: Tenant, url: str):
    response = tenant.client.post("/webhooks", json={"url": url, "events": ["envelope.sent"]})
    body = assert_problem(response, 400, "VALIDATION_ERROR")
    assert body["error"] == REJECTED
    assert tenant.client.get("/webhooks").json()["data"] == []


def test_unresolvable_public_name_accepted_and_secret_shown_once(tenant: Tenant):
    created = register(tenant.client, PUBLIC_NAME, ["envelope.sent", "envelope.voided"])
    assert {"id", "url", "events", "isActive", "secret"} <= set(created)
    assert created["id"].startswith("wh_")
    assert created["url"] == PUBLIC_NAME
    assert created["events"] == ["envelope.sent", "envelope.voided"]
    assert created["isActive"] is True
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 30

    listed = tenant.client.get("/webhooks")
    assert listed.status_code == 200
    body = listed.json()
    assert body["pagination"]["total"] == 1
    (item,) = body["data"]
    assert item["id"] == created["id"] and item["isActive"] is True
    assert "secret" not in item
    assert created["secret"] not in listed.text


def test_second_endpoint_has_its_own_secret(tenant: Tenant):
    a = register(tenant.client)
    b = register(tenant.client)
    assert a["secret"] != b["secret"] and a["id"] != b["id"]
    ids = [w["id"] for w in tenant.client.get("/webhooks").json()["data"]]
    assert sorted(ids) == sorted([a["id"], b["id"]])


def test_live_key_needs_https_for_public_targets(tenant: Tenant, live_client: httpx.Client):
    response = live_client.post(
        "/webhooks", json={"url": "http://hooks.example.com/x", "events": ["envelope.sent"]}
    )
    assert_problem(response, 400, "VALIDATION_ERROR")
    assert "https" in response.json()["error"]
    assert register(live_client, "https://hooks.example.com/x")["isActive"] is True
    # test keys may use http
    assert register(tenant.client, "http://hooks.example.com/x")["isActive"] is True


def test_own_hooks_path_allowed_other_own_paths_refused(server: Server, tenant: Tenant):
    own = server.settings.effective_public_url
    assert register(tenant.client, f"{own}/hooks/certyneo")["url"] == f"{own}/hooks/certyneo"
    for path in ("/api/v1/envelopes", "/readyz", "/"):
        response = tenant.client.post(
            "/webhooks", json={"url": f"{own}{path}", "events": ["envelope.sent"]}
        )
        assert_problem(response, 400, "VALIDATION_ERROR")
        assert response.json()["error"].startswith("url: URL rejected")


@pytest.mark.parametrize(
    "body",
    [
        {"url": PUBLIC_NAME, "events": ["envelope.exploded"]},
        {"url": PUBLIC_NAME, "events": []},
        {"url": PUBLIC_NAME},
        {"events": ["envelope.sent"]},
        {"url": "ftp://hooks.example.com/x", "events": ["envelope.sent"]},
        {"url": "https://u:p@hooks.example.com/x", "events": ["envelope.sent"]},
        {"url": "hooks.example.com/x", "events": ["envelope.sent"]},
        {"url": PUBLIC_NAME, "events": "envelope.sent"},
    ],
)
def test_invalid_bodies_refused(tenant: Tenant, body: dict):
    assert_problem(tenant.client.post("/webhooks", json=body), 400, "VALIDATION_ERROR")
    assert tenant.client.get("/webhooks").json()["data"] == []


def test_unknown_event_names_the_field(tenant: Tenant):
    response = tenant.client.post(
        "/webhooks", json={"url": PUBLIC_NAME, "events": ["envelope.sent", "envelope.exploded"]}
    )
    body = assert_problem(response, 400, "VALIDATION_ERROR")
    assert "envelope.exploded" in body["error"]


def test_star_subscribes_to_every_event_and_duplicates_collapse(tenant: Tenant):
    assert register(tenant.client, events=["*"])["events"] == ALL_EVENTS
    dup = register(tenant.client, events=["envelope.sent", "envelope.sent"])
    assert dup["events"] == ["envelope.sent"]


# ---------------------------------------------------------------- update, rotate, delete


def test_patch_url_events_and_is_active(tenant: Tenant):
    created = register(tenant.client)
    wid = created["id"]
    response = tenant.client.patch(
        f"/webhooks/{wid}",
        json={"url": "https://other.example.com/y", "events": ["envelope.voided"]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["url"] == "https://other.example.com/y"
    assert body["events"] == ["envelope.voided"]
    assert "secret" not in body

    off = tenant.client.patch(f"/webhooks/{wid}", json={"isActive": False})
    assert off.status_code == 200 and off.json()["isActive"] is False
    # omitted members are left alone
    assert off.json()["url"] == "https://other.example.com/y"
    assert off.json()["events"] == ["envelope.voided"]
    on = tenant.client.patch(f"/webhooks/{wid}", json={"isActive": True})
    assert on.status_code == 200 and on.json()["isActive"] is True
    assert "disabledReason" not in on.json()
    (listed,) = tenant.client.get("/webhooks").json()["data"]
    assert listed["url"] == "https://other.example.com/y" and listed["isActive"] is True


def test_patch_applies_the_same_rules_as_create(tenant: Tenant):
    wid = register(tenant.client)["id"]
    response = tenant.client.patch(f"/webhooks/{wid}", json={"url": "http://127.0.0.1:1/x"})
    assert assert_problem(response, 400, "VALIDATION_ERROR")["error"] == REJECTED
    response = tenant.client.patch(f"/webhooks/{wid}", json={"events": ["nope"]})
    assert_problem(response, 400, "VALIDATION_ERROR")
    (listed,) = tenant.client.get("/webhooks").json()["data"]
    assert listed["url"] == PUBLIC_NAME and listed["events"] == ["envelope.created"]


def test_rotate_secret_answers_a_new_secret_once(tenant: Tenant):
    created = register(tenant.client)
    response = tenant.client.post(f"/webhooks/{created['id']}/rotate-secret")
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert rotated["id"] == created["id"]
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    listed = tenant.client.get("/webhooks")
    assert rotated["secret"] not in listed.text and created["secret"] not in listed.text


def test_delete(tenant: Tenant):
    keep = register(tenant.client)
    gone = register(tenant.client)
    response = tenant.client.delete(f"/webhooks/{gone['id']}")
    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert [w["id"] for w in tenant.client.get("/webhooks").json()["data"]] == [keep["id"]]
    assert_problem(tenant.client.delete(f"/webhooks/{gone['id']}"), 404, "NOT_FOUND")
    assert_problem(tenant.client.get(f"/webhooks/{gone['id']}/deliveries"), 404, "NOT_FOUND")


@pytest.mark.parametrize("wid", ["wh_01HZZZZZZZZZZZZZZZZZZZZZZZ", "nope", "env_x", "%2e%2e"])
def test_unknown_ids_are_404(tenant: Tenant, wid: str):
    assert_problem(tenant.client.delete(f"/webhooks/{wid}"), 404, "NOT_FOUND")
    assert_problem(tenant.client.patch(f"/webhooks/{wid}", json={}), 404, "NOT_FOUND")


def test_other_tenant_and_other_environment_see_404(
    tenant: Tenant, other_tenant: Tenant, live_client: httpx.Client
):
    wid = register(tenant.client)["id"]
    for client in (other_tenant.client, live_client):
        assert client.get("/webhooks").json()["data"] == []
        assert_problem(client.patch(f"/webhooks/{wid}", json={"isActive": False}), 404, "NOT_FOUND")
        assert_problem(client.post(f"/webhooks/{wid}/rotate-secret"), 404, "NOT_FOUND")
        assert_problem(client.get(f"/webhooks/{wid}/deliveries"), 404, "NOT_FOUND")
        assert_problem(
            client.post(f"/webhooks/{wid}/deliveries/dlv_01HZZZZZZZZZZZZZZZZZZZZZZZ/redeliver"),
            404,
            "NOT_FOUND",
        )
        assert_problem(client.delete(f"/webhooks/{wid}"), 404, "NOT_FOUND")
    (still,) = tenant.client.get("/webhooks").json()["data"]
    assert still["id"] == wid and still["isActive"] is True


def test_scope_webhooks_write_required(tenant: Tenant):
    wid = register(tenant.client)["id"]
    narrow = tenant.client_for(
        tenant.new_key("test", ["envelopes:read", "envelopes:write", "keys:write"])
    )
    try:
        calls = [
            narrow.post("/webhooks", json={"url": PUBLIC_NAME, "events": ["envelope.sent"]}),
            narrow.get("/webhooks"),
            narrow.patch(f"/webhooks/{wid}", json={"isActive": False}),
            narrow.post(f"/webhooks/{wid}/rotate-secret"),
            narrow.get(f"/webhooks/{wid}/deliveries"),
            narrow.post(f"/webhooks/{wid}/deliveries/dlv_01HZZZZZZZZZZZZZZZZZZZZZZZ/redeliver"),
            narrow.delete(f"/webhooks/{wid}"),
        ]
        for response in calls:
            body = assert_problem(response, 403, "FORBIDDEN")
            assert "webhooks:write" in body["error"]
    finally:
        narrow.close()
    only_webhooks = tenant.client_for(tenant.new_key("test", ["webhooks:write"]))
    try:
        assert only_webhooks.get("/webhooks").status_code == 200
    finally:
        only_webhooks.close()
    assert tenant.client.get("/webhooks").json()["data"][0]["isActive"] is True


def test_no_key_is_401(server: Server):
    with httpx.Client(base_url=f"{server.base_url}/api/v1") as anonymous:
        assert_problem(anonymous.get("/webhooks"), 401, "UNAUTHORIZED")
        assert_problem(
            anonymous.post("/webhooks", json={"url": PUBLIC_NAME, "events": ["envelope.sent"]}),
            401,
            "UNAUTHORIZED",
        )


# ---------------------------------------------------------------- the delivery log


def _wait_deliveries(client: httpx.Client, wid: str, predicate, timeout: float = 15) -> list:
    deadline = time.monotonic() + timeout
    while True:
        data = client.get(f"/webhooks/{wid}/deliveries").json()["data"]
        if predicate(data):
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"deliveries never matched: {data}")
        time.sleep(0.1)


def test_deliveries_list_shape_and_redeliver(tenant: Tenant, other_tenant: Tenant):
    """hooks.example.com does not resolve here: the first attempt fails and is scheduled again."""
    wid = register(tenant.client, events=["envelope.created"])["id"]
    env = draft(tenant)
    (delivery,) = _wait_deliveries(tenant.client, wid, lambda d: d and d[0]["attempt"] >= 1)
    assert delivery["id"].startswith("dlv_")
    assert delivery["eventId"].startswith("evt_")
    assert delivery["event"] == "envelope.created"
    assert delivery["status"] == "PENDING"
    assert delivery["attempt"] == 1
    assert "hooks.example.com" in delivery["error"]
    for key in ("createdAt", "lastAttemptAt", "nextAttemptAt"):
        assert delivery[key].endswith("Z"), delivery
    assert "deliveredAt" not in delivery and "responseStatus" not in delivery
    page = tenant.client.get(f"/webhooks/{wid}/deliveries").json()["pagination"]
    assert page["total"] == 1 and page["page"] == 1

    again = tenant.client.post(f"/webhooks/{wid}/deliveries/{delivery['id']}/redeliver")
    assert again.status_code == 202, again.text
    body = again.json()
    assert body["id"] != delivery["id"] and body["id"].startswith("dlv_")
    assert body["eventId"] == delivery["eventId"] and body["event"] == "envelope.created"
    assert body["status"] == "PENDING" and body["attempt"] == 0
    listed = tenant.client.get(f"/webhooks/{wid}/deliveries").json()
    assert listed["pagination"]["total"] == 2
    assert {d["eventId"] for d in listed["data"]} == {delivery["eventId"]}

    # the delivery belongs to this endpoint only
    other_wid = register(tenant.client, events=["envelope.voided"])["id"]
    assert_problem(
        tenant.client.post(f"/webhooks/{other_wid}/deliveries/{delivery['id']}/redeliver"),
        404,
        "NOT_FOUND",
    )
    assert_problem(
        other_tenant.client.post(f"/webhooks/{wid}/deliveries/{delivery['id']}/redeliver"),
        404,
        "NOT_FOUND",
    )
    assert_problem(
        tenant.client.post(f"/webhooks/{wid}/deliveries/not-an-id/redeliver"), 404, "NOT_FOUND"
    )
    assert env["status"] == "DRAFT"


def test_deliveries_only_for_subscribed_events_of_the_tenant(server: Server, tenant: Tenant):
    wid = register(tenant.client, events=["envelope.sent"])["id"]
    stranger = new_tenant(server)
    try:
        register(stranger.client, events=["envelope.created", "envelope.sent"])
        draft(stranger)  # another tenant's event: never on our endpoint
        env = draft(tenant)  # envelope.created: not subscribed
        assert tenant.client.post(f"/envelopes/{env['id']}/send").status_code == 200
        data = _wait_deliveries(tenant.client, wid, lambda d: len(d) >= 1)
        time.sleep(1.5)  # one more worker tick for anything that should not be there
        data = tenant.client.get(f"/webhooks/{wid}/deliveries").json()["data"]
        assert [d["event"] for d in data] == ["envelope.sent"]
    finally:
        stranger.client.close()


def test_deleting_an_endpoint_removes_its_deliveries(tenant: Tenant):
    wid = register(tenant.client, events=["envelope.created"])["id"]
    draft(tenant)
    _wait_deliveries(tenant.client, wid, lambda d: len(d) == 1)
    assert tenant.client.delete(f"/webhooks/{wid}").json() == {"success": True}
    assert_problem(tenant.client.get(f"/webhooks/{wid}/deliveries"), 404, "NOT_FOUND")


# ---------------------------------------------------------------- the secret at rest


def test_secret_not_kept_in_clear_in_the_database(server: Server, tenant: Tenant):
    """The secret is sealed at rest; an ``Idempotency-Key`` must not leave a clear copy."""
    response = tenant.client.post(
        "/webhooks",
        json={"url": PUBLIC_NAME, "events": ["envelope.sent"]},
        headers={"Idempotency-Key": f"wh-{uuid.uuid4()}"},
    )
    assert response.status_code == 201, response.text
    secret = response.json()["secret"]

    def scan(session) -> list[str]:  # type: ignore[no-untyped-def]
        found = []
        for table in ("webhook_endpoints", "idempotency_records"):
            for row in session.execute(text(f"SELECT * FROM {table}")):
                if secret in json.dumps([str(v) for v in row]):
                    found.append(table)
        return found

    assert server.db.run_sync(scan) == []
