"""``kill -9`` a replica in the middle of its work, restart it: nothing lost, nothing doubled.

A real ``signbot serve`` process talks to a real SMTP server, SMS gateway, timestamp authority
and webhook consumer (:mod:`tests.support.cluster`). The test holds one of them so that the
replica is caught mid-conversation — an invitation in SMTP's DATA, a text at the gateway, the
seal waiting for its timestamp, a webhook POST waiting for its answer — kills the process
without warning, lets the held attempt be refused (the outside world never accepted it), and
starts the replica again. Its successor takes the work over once the dead claim's lease runs
out, and the outside world ends up with exactly one of each.

On SQLite (the embedded default) with local files, and on PostgreSQL with S3 storage.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from bot.db import Database
from bot.envelopes.models import AuditEvent
from bot.jobs.models import OutboxEvent
from bot.signing.verify import load_roots, verify_pdf
from tests.conftest import BACKENDS, PG_URL, make_pdf
from tests.signing.tsa import local_tsa
from tests.support.cluster import (
    Replica,
    SmsGateway,
    SmtpSink,
    TsaGate,
    WebhookReceiver,
    api,
    create_key,
    until,
)
from tests.support.pg import throwaway_database
from tests.support.s3 import moto_server

EVENTS = [
    "envelope.created",
    "envelope.sent",
    "envelope.completed",
    "envelope.declined",
    "envelope.voided",
    "envelope.expired",
    "recipient.signed",
    "recipient.viewed",
]
LEASE = 2  # SIGNBOT_JOBS_LEASE_SECONDS: how long a dead replica's claim holds


@dataclass
class Deployment:
    replica: Replica
    client: httpx.Client
    db: Database
    smtp: SmtpSink
    sms: SmsGateway
    hooks: WebhookReceiver
    tsa: TsaGate
    roots: list[Path]

    def restart_after_kill(self) -> None:
        self.replica.start()

    def envelope(self, email: str, phone: str | None = None, send: bool = True) -> dict[str, Any]:
        doc = self.client.post(
            "/documents", files={"file": ("deal.pdf", make_pdf(1), "application/pdf")}
        )
        assert doc.status_code == 201, doc.text
        recipient: dict[str, Any] = {"email": email, "name": "Kim Lee"}
        if phone:
            recipient["phone"] = phone
        created = self.client.post(
            "/envelopes",
            json={"subject": "Deal", "documentIds": [doc.json()["id"]], "recipients": [recipient]},
        )
        assert created.status_code == 201, created.text
        if send:
            sent = self.client.post(f"/envelopes/{created.json()['id']}/send")
            assert sent.status_code == 200, sent.text
        return created.json()

    def count(self, model: Any, **where: Any) -> int:
        def work(session: Any) -> int:
            query = select(model)
            for name, value in where.items():
                query = query.where(getattr(model, name) == value)
            return len(list(session.exec(query)))

        return self.db.run_sync(work)


@pytest.fixture(scope="module", params=BACKENDS)
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    base = tmp_path_factory.mktemp(f"kill9-{request.param}")
    with contextlib.ExitStack() as stack:
        smtp, sms, hooks = SmtpSink(), SmsGateway(), WebhookReceiver()
        for gate in (smtp, sms, hooks):
            stack.callback(gate.close)
        tsa = stack.enter_context(local_tsa())
        tsa_gate = TsaGate(tsa.url)
        stack.callback(tsa_gate.close)
        tsa_root = base / "tsa-root.der"
        tsa_root.write_bytes(tsa.root.dump())
        env = {
            "SIGNBOT_SMTP_URL": smtp.url,
            "SIGNBOT_SMTP_FROM": "contracts@signbot.test",
            "SIGNBOT_SMS_URL": sms.url,
            "SIGNBOT_SMS_FROM": "+15550001111",
            "SIGNBOT_TSA_URL": tsa_gate.url,
            "SIGNBOT_TSA_ROOTS": str(tsa_root),
            "SIGNBOT_JOBS_INTERVAL_SECONDS": "0.2",
            "SIGNBOT_JOBS_LEASE_SECONDS": str(LEASE),
            "SIGNBOT_WEBHOOK_ALLOW_PRIVATE": "1",
            "SIGNBOT_WEBHOOK_TIMEOUT_SECONDS": "2",
            "SIGNBOT_WEBHOOK_RETRY_BASE_SECONDS": "1",
            "SIGNBOT_RATE_LIMIT_ENABLED": "false",
        }
        data_dir = base / "replica"
        if request.param == "postgresql":
            assert PG_URL
            env["SIGNBOT_DATABASE_URL"] = stack.enter_context(
                throwaway_database(PG_URL, prefix="signbot_kill")
            )
            env |= stack.enter_context(moto_server()).environment("kill9")
        replica = Replica("a", data_dir, env).start()
        stack.callback(replica.terminate)
        key = create_key(data_dir, env)
        client = api(replica.url, key)
        stack.callback(client.close)
        hook = client.post("/webhooks", json={"url": hooks.url, "events": EVENTS})
        assert hook.status_code == 201, hook.text
        db = Database(env.get("SIGNBOT_DATABASE_URL") or f"sqlite:///{data_dir / 'signbot.db'}")
        stack.callback(db.dispose)
        roots = [data_dir / "seal" / "root.pem", tsa_root]
        yield Deployment(replica, client, db, smtp, sms, hooks, tsa_gate, roots)


def _quiet(dep: Deployment) -> None:
    """Let every retry that could double something come due (and see that none does)."""
    time.sleep(LEASE * 2 + 1)


def test_killed_mid_send_every_invitation_arrives_once(deployment: Deployment) -> None:
    dep = deployment
    email, phone = "mid-send@example.com", "+15557654321"
    held_mail, held_sms = len(dep.smtp.held), len(dep.sms.held)
    dep.smtp.hold()
    dep.sms.hold()
    envelope = dep.envelope(email, phone)
    until(lambda: len(dep.smtp.held) > held_mail, what="the invitation in SMTP's DATA")
    until(lambda: len(dep.sms.held) > held_sms, what="the text at the gateway")

    dep.replica.kill()
    dep.smtp.release()  # the held attempts are refused: the dead replica's sends never happened
    dep.sms.release()
    assert not dep.smtp.to(email, "invitation") and not dep.sms.to(phone)
    dep.restart_after_kill()

    until(lambda: dep.smtp.to(email, "invitation"), what="the invitation after the restart")
    until(lambda: dep.sms.to(phone), what="the text after the restart")
    _quiet(dep)
    assert len(dep.smtp.to(email, "invitation")) == 1
    assert len(dep.sms.to(phone)) == 1
    recipient = dep.client.get(f"/envelopes/{envelope['id']}").json()["recipients"][0]
    assert recipient["emailStatus"] == "SENT" and recipient["smsStatus"] == "SENT"


def test_killed_mid_seal_the_envelope_is_sealed_once(deployment: Deployment) -> None:
    dep = deployment
    email = "mid-seal@example.com"
    envelope = dep.envelope(email)
    eid = envelope["id"]
    until(lambda: dep.smtp.to(email, "invitation"), what="the invitation")
    held = len(dep.tsa.held)
    dep.tsa.hold()
    form = {"name": "Kim Lee", "mode": "typed", "typed": "Kim Lee", "consent": "yes"}
    signed = httpx.post(f"{envelope['recipients'][0]['signUrl']}/sign", data=form, timeout=30)
    assert signed.status_code == 303
    until(lambda: len(dep.tsa.held) > held, what="the seal asking for its timestamp")

    dep.replica.kill()
    dep.tsa.release()
    assert dep.client is not None
    dep.restart_after_kill()

    document = until(
        lambda: (r := dep.client.get(f"/envelopes/{eid}/signed-document")).status_code == 200 and r,
        timeout=60,
        what="the sealed document after the restart",
    )
    until(lambda: dep.hooks.of(eid, "envelope.completed"), what="envelope.completed")
    until(lambda: dep.smtp.to(email, "completed"), what="the completion email")
    _quiet(dep)

    report = verify_pdf(document.content, load_roots(dep.roots))
    assert report.ok, report
    assert len(report.signatures) == 1  # one seal, not a seal over a seal
    assert dep.count(AuditEvent, envelope_id=eid, event="envelope.sealed") == 1
    assert dep.count(AuditEvent, envelope_id=eid, event="envelope.completed") == 1
    assert dep.count(OutboxEvent, envelope_id=eid, event="envelope.completed") == 1
    assert len(dep.hooks.of(eid, "envelope.completed")) == 1
    assert len(dep.smtp.to(email, "completed")) == 1


def test_killed_mid_delivery_the_webhook_is_accepted_once(deployment: Deployment) -> None:
    dep = deployment
    held = len(dep.hooks.held)
    dep.hooks.hold()
    envelope = dep.envelope("mid-delivery@example.com", send=False)
    eid = envelope["id"]
    until(
        lambda: any(d.envelope_id == eid for d in dep.hooks.held[held:]),
        what="envelope.created at the consumer",
    )

    dep.replica.kill()
    dep.hooks.release()  # answered 503 to a dead socket: the consumer did not take it
    assert not dep.hooks.of(eid)
    dep.restart_after_kill()

    until(lambda: dep.hooks.of(eid, "envelope.created"), timeout=60, what="the redelivery")
    _quiet(dep)
    accepted = dep.hooks.of(eid, "envelope.created")
    assert len(accepted) == 1
    # every attempt carried the same ids, so a consumer that saw the dead attempt can dedupe
    attempts = [d for d in dep.hooks.arrivals if d.envelope_id == eid]
    assert len(attempts) >= 2
    assert {d.webhook_id for d in attempts} == {accepted[0].webhook_id}
    assert {d.event_id for d in attempts} == {accepted[0].event_id}
