"""Parallel requests on one signing link, and the edges a review found: limits must hold and
events stay single when a browser (or an attacker) fires many requests at once — on
PostgreSQL, where transactions really run side by side."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sqlmodel import col, select

from bot.envelopes.models import AuditEvent
from bot.jobs.models import OutboxEvent
from tests.ceremony.test_ceremony import create, links, sign
from tests.conftest import Server, Tenant, upload


def _parallel(count: int, call: Any) -> list[httpx.Response]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: call(), range(count)))


def _audit(server: Server, envelope_id: str, event: str) -> int:
    rows = server.db.run_sync(
        lambda s: list(
            s.exec(
                select(AuditEvent.seq).where(
                    AuditEvent.envelope_id == envelope_id, AuditEvent.event == event
                )
            )
        )
    )
    return len(rows)


def test_parallel_wrong_codes_are_all_counted(tenant: Tenant, server: Server) -> None:
    envelope = create(
        tenant, [{"email": "race@example.com", "name": "Race", "authentication": "EMAIL_OTP"}]
    )
    url = links(envelope)["race@example.com"]
    sends = _parallel(12, lambda: httpx.post(f"{url}/otp", timeout=30))
    assert sum(r.status_code == 303 for r in sends) == 5  # the hourly allowance, exactly
    answers = _parallel(20, lambda: httpx.post(f"{url}/otp/verify", data={"code": "000001"}))
    assert all(a.status_code == 400 for a in answers)
    assert _audit(server, envelope["id"], "recipient.code_failed") <= 5


def test_parallel_opens_and_signs_record_once(tenant: Tenant, server: Server) -> None:
    envelope = create(tenant, [{"email": "twice@example.com", "name": "Twice"}])
    url = links(envelope)["twice@example.com"]
    assert all(r.status_code == 200 for r in _parallel(8, lambda: httpx.get(url, timeout=30)))
    results = _parallel(4, lambda: sign(url, "Twice"))
    assert sorted(r.status_code for r in results) == [303, 409, 409, 409]
    events = server.db.run_sync(
        lambda s: list(
            s.exec(
                select(OutboxEvent.event).where(
                    OutboxEvent.envelope_id == envelope["id"],
                    col(OutboxEvent.event).in_(["recipient.viewed", "recipient.signed"]),
                )
            )
        )
    )
    assert sorted(events) == ["recipient.signed", "recipient.viewed"]


def test_a_signer_signs_again_after_the_sender_resubmits(tenant: Tenant) -> None:
    envelope = create(
        tenant,
        [
            {"email": "s1@example.com", "name": "First Signer"},
            {"email": "boss@example.com", "name": "Boss", "role": "APPROVER"},
        ],
    )
    urls = links(envelope)
    assert sign(urls["s1@example.com"], "First Signer").status_code == 303
    returned = httpx.post(f"{urls['boss@example.com']}/return", data={"changes": "Clause 2"})
    assert returned.status_code == 303
    assert tenant.client.post(f"/envelopes/{envelope['id']}/send").status_code == 200
    assert sign(urls["s1@example.com"], "First Signer").status_code == 303
    assert (
        httpx.post(f"{urls['boss@example.com']}/approve", data={"consent": "yes"}).status_code
        == 303
    )
    deadline = time.monotonic() + 30
    while tenant.client.get(f"/envelopes/{envelope['id']}/signed-document").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_a_signature_of_nothing_drawable_is_refused(tenant: Tenant) -> None:
    envelope = create(tenant, [{"email": "apple@example.com", "name": "Apple"}])
    url = links(envelope)["apple@example.com"]
    form = {"name": "\uf8ff", "mode": "typed", "typed": "\uf8ff\u200b", "consent": "yes"}
    response = httpx.post(f"{url}/sign", data=form)
    assert response.status_code == 400 and 'id="name-error"' in response.text


def test_another_tenant_cannot_touch_an_envelope_through_send(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    document = upload(tenant)
    draft = tenant.client.post(
        "/envelopes",
        json={
            "subject": "Mine",
            "documentIds": [document["id"]],
            "recipients": [{"email": "x@example.com"}],
            "fields": [{"recipientEmail": "x@example.com", "anchorText": "nowhere"}],
        },
    ).json()
    before = tenant.client.get(f"/envelopes/{draft['id']}").json()["fields"]
    assert other_tenant.client.post(f"/envelopes/{draft['id']}/send").status_code == 404
    assert tenant.client.get(f"/envelopes/{draft['id']}").json()["fields"] == before


def test_a_voided_envelope_sends_no_stale_invitation(tenant: Tenant, server: Server) -> None:
    envelope = create(tenant, [{"email": "late-mail@example.com", "name": "Late"}])
    assert (
        tenant.client.post(f"/envelopes/{envelope['id']}/void", json={"reason": "oops"}).status_code
        == 200
    )
    mail_dir = server.settings.data_dir / "mail"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not list(mail_dir.glob("*voided-late-mail*")):
        time.sleep(0.1)
    assert list(mail_dir.glob("*voided-late-mail*"))
    # the invitation was queued before the void; it is dropped or was sent before it, never after
    invitations = sorted(mail_dir.glob("*invitation-late-mail*"))
    voided = sorted(mail_dir.glob("*voided-late-mail*"))
    assert not invitations or invitations[0].name < voided[0].name
