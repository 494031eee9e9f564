"""Two ``signbot serve`` replicas on one PostgreSQL, one Redis and one S3 bucket.

Each replica has its own data directory (as on its own machine); they share nothing else.
What a load balancer in front of them must be able to count on: one rate-limit budget per key,
a signer whose requests land on either replica, and every email, text, webhook and reminder
sent once however the two workers race for them.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col, select

from bot.db import Database
from bot.envelopes.models import Envelope
from bot.signing.verify import load_roots, verify_pdf
from bot.timeutil import utcnow
from tests.conftest import PG_URL, make_pdf
from tests.support.cluster import (
    Replica,
    SmsGateway,
    SmtpSink,
    WebhookReceiver,
    api,
    create_key,
    start_together,
    until,
)
from tests.support.mailbox import body_text
from tests.support.pg import throwaway_database
from tests.support.redisserver import redis_server
from tests.support.s3 import moto_server

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="SIGNBOT_TEST_DATABASE_URL is not set"),
]

CONSENT = {"consent": "yes"}


@dataclass
class Pair:
    a: Replica
    b: Replica
    admin: httpx.Client
    db: Database
    smtp: SmtpSink
    sms: SmsGateway
    hooks: WebhookReceiver

    def key(self, name: str) -> str:
        made = self.admin.post("/keys", json={"name": name, "environment": "live"})
        assert made.status_code == 201, made.text
        return str(made.json()["secret"])

    def envelope(
        self, via: Replica, email: str, *, phone: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        with api(via.url, self.admin_key) as client:
            doc = client.post(
                "/documents", files={"file": ("deal.pdf", make_pdf(1), "application/pdf")}
            )
            assert doc.status_code == 201, doc.text
            recipient: dict[str, Any] = {"email": email, "name": "Kim Lee"}
            if phone:
                recipient["phone"] = phone
            for field in ("authentication",):
                if field in extra:
                    recipient[field] = extra.pop(field)
            body = {"subject": "Deal", "documentIds": [doc.json()["id"]], "recipients": [recipient]}
            created = client.post("/envelopes", json={**body, **extra})
            assert created.status_code == 201, created.text
            sent = client.post(f"/envelopes/{created.json()['id']}/send")
            assert sent.status_code == 200, sent.text
            return created.json()

    admin_key: str = ""


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    assert PG_URL
    base = tmp_path_factory.mktemp("replicas")
    with contextlib.ExitStack() as stack:
        smtp, sms, hooks = SmtpSink(), SmsGateway(), WebhookReceiver()
        for gate in (smtp, sms, hooks):
            stack.callback(gate.close)
        database_url = stack.enter_context(throwaway_database(PG_URL, prefix="signbot_pair"))
        redis = stack.enter_context(redis_server())
        s3 = stack.enter_context(moto_server())
        env = {
            "SIGNBOT_DATABASE_URL": database_url,
            "SIGNBOT_REDIS_URL": redis.url,
            **s3.environment("pair"),
            "SIGNBOT_SMTP_URL": smtp.url,
            "SIGNBOT_SMTP_FROM": "contracts@signbot.test",
            "SIGNBOT_SMS_URL": sms.url,
            "SIGNBOT_SMS_FROM": "+15550001111",
            "SIGNBOT_JOBS_INTERVAL_SECONDS": "0.2",
            "SIGNBOT_JOBS_LEASE_SECONDS": "2",
            "SIGNBOT_WEBHOOK_ALLOW_PRIVATE": "1",
            "SIGNBOT_WEBHOOK_RETRY_BASE_SECONDS": "1",
        }
        a = Replica("a", base / "a", env)
        b = Replica("b", base / "b", env)
        # started together, as an orchestrator does: migrations and first-start set-up race
        for replica in (a, b):
            stack.callback(replica.terminate)
        start_together(a, b)
        admin_key = create_key(a.data_dir, env)
        admin = api(a.url, admin_key)
        stack.callback(admin.close)
        hook = admin.post(
            "/webhooks",
            json={
                "url": hooks.url,
                "events": ["envelope.created", "envelope.sent", "envelope.completed"],
            },
        )
        assert hook.status_code == 201, hook.text
        db = Database(database_url)
        stack.callback(db.dispose)
        yield Pair(a, b, admin, db, smtp, sms, hooks, admin_key=admin_key)


def test_one_rate_limit_budget_per_key_across_replicas(pair: Pair) -> None:
    key = pair.key("burst")
    started = time.monotonic()
    statuses: list[int] = []
    with api(pair.a.url, key) as on_a, api(pair.b.url, key) as on_b:
        for i in range(300):
            answer = (on_a if i % 2 else on_b).get("/envelopes", params={"limit": 1})
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                assert int(answer.headers["retry-after"]) >= 1
                assert answer.headers["ratelimit-remaining"] == "0"
    elapsed = time.monotonic() - started
    ok = statuses.count(200)
    # one bucket of 200, refilled at 100/min while the test ran — not 200 on each replica
    assert statuses.count(429) == 300 - ok
    assert 200 <= ok <= 200 + int(elapsed * 100 / 60) + 1, (ok, elapsed)
    # both replicas refused: the budget really is shared, not spent on one side
    assert 429 in statuses[1::2] and 429 in statuses[0::2]


def test_a_signing_session_moves_between_replicas(pair: Pair) -> None:
    email = "otp-roams@example.com"
    envelope = pair.envelope(pair.a, email, authentication="EMAIL_OTP")
    link_a = envelope["recipients"][0]["signUrl"]
    assert link_a.startswith(pair.a.url)
    link_b = pair.b.url + link_a[len(pair.a.url) :]
    with httpx.Client(timeout=30) as browser:
        assert browser.get(link_b).status_code == 200  # the code page, on B
        assert browser.post(f"{link_a}/otp").status_code == 303  # the code asked on A
        mail = until(lambda: pair.smtp.to(email, "otp"), what="the one-time code")[0]
        code = re.search(r"\b(\d{6})\b", body_text(mail))
        assert code
        verified = browser.post(f"{link_b}/otp/verify", data={"code": code.group(1)})
        assert verified.status_code == 303  # checked on B
        page = browser.get(link_a)  # the cookie B set is honoured by A
        assert "/pages/0/1" in page.text
        assert browser.get(f"{link_b}/pages/0/1").status_code == 200  # previews from S3
        form = {"name": "Kim Lee", "mode": "typed", "typed": "Kim Lee", **CONSENT}
        assert browser.post(f"{link_b}/sign", data=form).status_code == 303
    eid = envelope["id"]
    with api(pair.b.url, pair.admin_key) as on_b:
        signed = until(
            lambda: (r := on_b.get(f"/envelopes/{eid}/signed-document")).status_code == 200 and r,
            timeout=60,
            what="the sealed document",
        )
    with api(pair.a.url, pair.admin_key) as on_a:
        assert on_a.get(f"/envelopes/{eid}/signed-document").content == signed.content


def test_every_notice_is_sent_once_and_every_seal_is_the_deployments(pair: Pair) -> None:
    replicas = [pair.a, pair.b]
    envelopes = [
        pair.envelope(replicas[i % 2], f"once-{i}@example.com", phone=f"+1555000{i:04d}")
        for i in range(10)
    ]
    for i, envelope in enumerate(envelopes):
        until(lambda i=i: pair.smtp.to(f"once-{i}@example.com", "invitation"), what="invitation")
        until(lambda i=i: pair.sms.to(f"+1555000{i:04d}"), what="text")
        until(lambda e=envelope: pair.hooks.of(e["id"], "envelope.sent"), what="envelope.sent")
    # sign half of them, each on the other replica than the one that created it
    form = {"name": "Kim Lee", "mode": "typed", "typed": "Kim Lee", **CONSENT}
    signed_ids = []
    for i, envelope in enumerate(envelopes[:4]):
        link = envelope["recipients"][0]["signUrl"]
        other = replicas[(i + 1) % 2]
        link = other.url + "/sign/" + link.rsplit("/sign/", 1)[1]
        assert httpx.post(f"{link}/sign", data=form, timeout=30).status_code == 303
        signed_ids.append(envelope["id"])
    for eid in signed_ids:
        until(lambda eid=eid: pair.hooks.of(eid, "envelope.completed"), timeout=60, what="done")
    time.sleep(5)  # let any double come due

    for i, envelope in enumerate(envelopes):
        assert len(pair.smtp.to(f"once-{i}@example.com", "invitation")) == 1
        assert len(pair.sms.to(f"+1555000{i:04d}")) == 1
        for event in ("envelope.created", "envelope.sent"):
            assert len(pair.hooks.of(envelope["id"], event)) == 1, event
    # one seal identity for the deployment, whichever replica sealed
    root_a = (pair.a.data_dir / "seal" / "root.pem").read_bytes()
    assert root_a == (pair.b.data_dir / "seal" / "root.pem").read_bytes()
    roots = load_roots([pair.a.data_dir / "seal" / "root.pem"])
    for i, eid in enumerate(signed_ids):
        assert len(pair.hooks.of(eid, "envelope.completed")) == 1
        assert len(pair.smtp.to(f"once-{i}@example.com", "completed")) == 1
        pdf = pair.admin.get(f"/envelopes/{eid}/signed-document").content
        report = verify_pdf(pdf, roots)
        assert report.ok, report


def test_reminders_go_out_once(pair: Pair) -> None:
    envelopes = [
        pair.envelope(
            [pair.a, pair.b][i % 2],
            f"remind-{i}@example.com",
            reminders={"intervalDays": 1, "maxCount": 3},
        )
        for i in range(6)
    ]
    ids = [e["id"] for e in envelopes]
    for i in range(6):
        until(lambda i=i: pair.smtp.to(f"remind-{i}@example.com", "invitation"), what="invite")
    # a day passes for these envelopes: their first reminder is due now, on both workers
    pair.db.run_sync(
        lambda s: s.exec(  # type: ignore[call-overload]
            update(Envelope)
            .where(col(Envelope.id).in_(ids))
            .values(next_reminder_at=utcnow() - timedelta(seconds=1))
        )
    )
    for i in range(6):
        until(
            lambda i=i: pair.smtp.to(f"remind-{i}@example.com", "reminder"),
            timeout=30,
            what="the reminder",
        )
    time.sleep(7)  # more than one clock tick of each worker
    for i in range(6):
        assert len(pair.smtp.to(f"remind-{i}@example.com", "reminder")) == 1
    later = pair.db.run_sync(
        lambda s: list(s.exec(select(Envelope.next_reminder_at).where(col(Envelope.id).in_(ids))))
    )
    assert all(at is not None and at > utcnow() + timedelta(hours=23) for at in later)
