"""Replays keep no signing token at rest, yet answer the same tokens as the first time."""

from __future__ import annotations

from sqlmodel import select

from bot.web.idempotency import IdempotencyRecord
from tests.conftest import Tenant, upload


def test_replayed_create_and_send_carry_tokens_that_were_never_stored(tenant: Tenant) -> None:
    doc = upload(tenant)
    body = {
        "subject": "NDA",
        "documentIds": [doc["id"]],
        "recipients": [{"email": "a@example.com"}, {"email": "b@example.com", "order": 2}],
    }
    first = tenant.client.post("/envelopes", json=body, headers={"Idempotency-Key": "tok-1"})
    again = tenant.client.post("/envelopes", json=body, headers={"Idempotency-Key": "tok-1"})
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    tokens = [r["accessToken"] for r in first.json()["recipients"]]
    assert [r["accessToken"] for r in again.json()["recipients"]] == tokens
    assert [r["signUrl"] for r in again.json()["recipients"]] == [
        r["signUrl"] for r in first.json()["recipients"]
    ]
    envelope_id = first.json()["id"]
    sent = tenant.client.post(
        f"/envelopes/{envelope_id}/send", headers={"Idempotency-Key": "tok-2"}
    )
    resent = tenant.client.post(
        f"/envelopes/{envelope_id}/send", headers={"Idempotency-Key": "tok-2"}
    )
    assert sent.status_code == resent.status_code == 200
    assert [r["accessToken"] for r in resent.json()["recipients"]] == tokens

    stored = tenant.server.db.run_sync(
        lambda s: [
            str(r.body)
            for r in s.exec(
                select(IdempotencyRecord).where(IdempotencyRecord.account_id == tenant.account_id)
            )
        ]
    )
    assert len(stored) == 2
    assert all(token not in text for token in tokens for text in stored)
    assert all("/sign/" not in text for text in stored)
