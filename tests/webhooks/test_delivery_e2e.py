"""Webhook delivery end to end, with real processes: ``signbot serve`` subprocesses POSTing to
a real local HTTP receiver that records every request (headers and raw body) and can be
scripted (answer 500 for the first N, be stopped and started, be slow beyond the timeout).

Every check is made on what arrives over the wire: both signatures are recomputed
(``hmac``) or verified with ``standardwebhooks``, and every payload is validated against
Certyneo's ``WebhookEventPayload`` schema.

Timings: the served processes poll every 0.1 s and retry after 0.2 s * 6^(n-1) (±20 %), with a
1 s HTTP timeout. Where the design waits for real time that no test can spend (a 60 s lease after
a crash, three days of failures), the test moves the stored clock back in the database and says so.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft7Validator, FormatChecker
from sqlalchemy import update
from sqlmodel import col, select
from standardwebhooks.webhooks import Webhook

from bot import migrations
from bot.accounts import service as accounts
from bot.app import create_app
from bot.config import Settings
from bot.db import Database
from bot.timeutil import utcnow
from bot.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.conftest import PG_URL, make_pdf
from tests.support.cluster import until as eventually
from tests.support.pg import throwaway_database
from tests.support.servers import free_port, signbot_serve, uvicorn_thread, wait_healthy

CERTYNEO_DIR = Path(__file__).resolve().parents[3] / "shared" / "certyneo"

WORKER_ENV = {
    "SIGNBOT_WEBHOOK_ALLOW_PRIVATE": "1",
    "SIGNBOT_JOBS_INTERVAL_SECONDS": "0.1",
    "SIGNBOT_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "SIGNBOT_WEBHOOK_TIMEOUT_SECONDS": "1",
    "SIGNBOT_LOG_LEVEL": "warning",
}
PDF_B64 = base64.b64encode(make_pdf(1)).decode()
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


# ---------------------------------------------------------------------------- the contract


def _payload_validator() -> Draft7Validator:
    swagger = json.loads((CERTYNEO_DIR / "connector-swagger.json").read_text())
    formats = FormatChecker(formats=())

    @formats.checks("date-time")
    def _strict(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not ISO_UTC.match(value):
            return False
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True

    @formats.checks("int32")
    def _int32(value: object) -> bool:
        return not isinstance(value, int) or -(2**31) <= value < 2**31

    return Draft7Validator(swagger["definitions"]["WebhookEventPayload"], format_checker=formats)


PAYLOAD = _payload_validator()


def contract_errors(payload: Any) -> list[str]:
    return [f"{e.json_path}: {e.message}" for e in PAYLOAD.iter_errors(payload)]


# ---------------------------------------------------------------------------- the receiver


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def event_id(self) -> str:
        return self.json["id"]


@dataclass
class Receiver:
    """A real HTTP server on loopback. ``plan(n)`` says how to answer the n-th request (from 0)
    of a path: ``(status, seconds to wait first)``."""

    port: int = field(default_factory=free_port)
    plan: Callable[[int], tuple[int, float]] = lambda n: (200, 0.0)
    hits: list[Hit] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._per_path: Counter[str] = Counter()
        self._server: ThreadingHTTPServer | None = None
        self.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                if len(body) != length:  # the sender died mid-request: nothing was delivered
                    return
                with receiver._lock:
                    n = receiver._per_path[self.path]
                    receiver._per_path[self.path] += 1
                    status, wait = receiver.plan(n)
                    receiver.hits.append(
                        Hit(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            status,
                            time.monotonic(),
                        )
                    )
                if wait:
                    time.sleep(wait)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    answer = f"answer {status}".encode()
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the client gave up (timeout): nothing to answer

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 256  # bursts of concurrent deliveries: no refused SYNs

            def handle_error(self, request: object, client_address: object) -> None:
                pass

        self._server = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def at(self, path: str) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.path == path]

    def ok_ids(self, path: str | None = None) -> list[str]:
        with self._lock:
            return [
                h.event_id
                for h in self.hits
                if (path is None or h.path == path) and 200 <= h.status < 300
            ]

    def wait(self, predicate: Callable[[], bool], timeout: float = 15, what: str = "") -> None:
        eventually(predicate, timeout, what or "receiver")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


# ---------------------------------------------------------------------------- signbot


@dataclass
class Signbot:
    """One database served by a ``signbot serve`` (or several); tenants are made directly."""

    base_url: str
    db: Database

    def tenant(self, environment: str = "test", base_url: str | None = None) -> Client:
        def work(session):  # type: ignore[no-untyped-def]
            account = accounts.create_account(session, f"e2e-{uuid.uuid4().hex[:12]}")
            return account.id, accounts.create_key(session, account.id, environment, "e2e")

        account_id, new = self.db.run_sync(work)
        return Client(self, account_id, new.secret, base_url or self.base_url)

    def deliveries(self, **where: Any) -> list[WebhookDelivery]:
        def work(session):  # type: ignore[no-untyped-def]
            query = select(WebhookDelivery)
            for name, value in where.items():
                query = query.where(getattr(WebhookDelivery, name) == value)
            return list(session.exec(query))

        return self.db.run_sync(work)


class Client:
    def __init__(self, bot: Signbot, account_id: str, secret: str, base_url: str) -> None:
        self.bot = bot
        self.account_id = account_id
        self.base_url = base_url
        self.http = httpx.Client(
            base_url=f"{base_url}/api/v1",
            headers={"Authorization": f"Bearer {secret}"},
            timeout=30,
        )

    def other_key(self, environment: str) -> Client:
        new = self.bot.db.run_sync(
            lambda s: accounts.create_key(s, self.account_id, environment, "e2e")
        )
        return Client(self.bot, self.account_id, new.secret, self.base_url)

    def elsewhere(self, base_url: str) -> Client:
        """The same key, talking to another server of the same database."""
        auth = self.http.headers["Authorization"]
        return Client(self.bot, self.account_id, auth.removeprefix("Bearer "), base_url)

    def register(self, url: str, events: list[str]) -> dict[str, Any]:
        response = self.http.post("/webhooks", json={"url": url, "events": events})
        assert response.status_code == 201, response.text
        return response.json()

    def draft(self, subject: str = "Contrat de prestation", **extra: Any) -> dict[str, Any]:
        doc = self.http.post(
            "/documents", files={"file": ("c.pdf", make_pdf(1), "application/pdf")}
        )
        assert doc.status_code == 201, doc.text
        response = self.http.post(
            "/envelopes",
            json={
                "subject": subject,
                "documentIds": [doc.json()["id"]],
                "recipients": [
                    {"email": "marie@example.com", "name": "Marie Dubois", "role": "SIGNER"},
                    {"email": "paul@example.com", "name": "Paul Martin", "role": "SIGNER"},
                ],
                **extra,
            },
        )
        assert response.status_code == 201, response.text
        return response.json()

    def send(self, envelope_id: str) -> dict[str, Any]:
        response = self.http.post(f"/envelopes/{envelope_id}/send")
        assert response.status_code == 200, response.text
        return response.json()

    def one_shot(self, subject: str) -> dict[str, Any]:
        """Certyneo's older form: creates and sends (envelope.created, then envelope.sent)."""
        response = self.http.post(
            "/envelopes",
            json={
                "subject": subject,
                "signers": [{"email": "marie@example.com", "name": "Marie Dubois"}],
                "documents": [{"name": "c.pdf", "base64Pdf": PDF_B64}],
            },
        )
        assert response.status_code == 201, response.text
        return response.json()

    def deliveries(self, webhook_id: str) -> list[dict[str, Any]]:
        response = self.http.get(f"/webhooks/{webhook_id}/deliveries", params={"limit": 100})
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def wait_deliveries(
        self, webhook_id: str, predicate: Callable[[list[dict]], bool], timeout: float = 15
    ) -> list[dict[str, Any]]:
        box: list[list[dict[str, Any]]] = []

        def check() -> bool:
            box[:] = [self.deliveries(webhook_id)]
            return predicate(box[0])

        try:
            eventually(check, timeout, f"deliveries of {webhook_id}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {box}") from None
        return box[0]

    def close(self) -> None:
        self.http.close()


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'signbot.db').resolve()}"


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signbot]:
    """The shared ``signbot serve`` (role all) of most tests, on its own SQLite data dir."""
    data_dir = tmp_path_factory.mktemp("e2e-shared")
    with signbot_serve(data_dir, WORKER_ENV) as base:
        db = Database(sqlite_url(data_dir))
        yield Signbot(base, db)
        db.dispose()


@pytest.fixture
def client(bot: Signbot) -> Iterator[Client]:
    c = bot.tenant()
    yield c
    c.close()


def verify(hit: Hit, secret: str) -> dict[str, Any]:
    """Both signatures of one request, checked independently; answers the parsed payload."""
    expected = hmac.new(secret.encode("utf-8"), hit.body, hashlib.sha256).hexdigest()
    assert hit.headers["x-certyneo-signature"] == expected
    payload = Webhook(secret).verify(hit.body, hit.headers)
    assert hit.headers["webhook-id"] == payload["id"]
    assert abs(int(hit.headers["webhook-timestamp"]) - time.time()) < 120
    assert hit.headers["content-type"].startswith("application/json")
    return payload


# ---------------------------------------------------------------------------- the happy path


def test_created_sent_voided_expired_signed_and_valid(client: Client, receiver: Receiver):
    hook = client.register(
        receiver.url("/all"),
        ["envelope.created", "envelope.sent", "envelope.voided", "envelope.expired"],
    )
    secret = hook["secret"]
    expiring = client.draft(
        "Bon de commande",
        expiresAt=(datetime.now(UTC) + timedelta(seconds=3)).isoformat().replace("+00:00", "Z"),
    )
    client.send(expiring["id"])
    env = client.draft("Contrat de prestation", signatureLevel="SIMPLE")
    client.send(env["id"])
    voided = client.http.post(f"/envelopes/{env['id']}/void", json={"reason": "Erreur de prix"})
    assert voided.status_code == 200, voided.text

    receiver.wait(lambda: len(receiver.at("/all")) >= 6, 20, "six events (expiry included)")
    time.sleep(0.3)
    hits = receiver.at("/all")
    payloads = [verify(hit, secret) for hit in hits]
    by = {(p["envelope_id"], p["event"]): p for p in payloads}
    assert sorted(by) == sorted(
        [
            (expiring["id"], "envelope.created"),
            (expiring["id"], "envelope.sent"),
            (expiring["id"], "envelope.expired"),
            (env["id"], "envelope.created"),
            (env["id"], "envelope.sent"),
            (env["id"], "envelope.voided"),
        ]
    ), [(p["envelope_id"], p["event"]) for p in payloads]
    assert len(payloads) == 6
    assert len({p["id"] for p in payloads}) == 6

    for payload in payloads:
        assert contract_errors(payload) == [], (payload, contract_errors(payload))
        assert re.fullmatch(r"evt_[0-9A-HJKMNP-TV-Z]{26}", payload["id"])
        assert payload["timestamp"] == payload["occurred_at"]
        assert ISO_UTC.match(payload["timestamp"])
        data = payload["data"]
        assert data["envelopeId"] == payload["envelope_id"]
        assert data["recipientCount"] == 2 and data["signedCount"] == 0
        assert isinstance(data["subject"], str) and isinstance(data["status"], str)
        assert None not in data.values(), data

    created = by[(env["id"], "envelope.created")]["data"]
    assert created["status"] == "DRAFT" and created["subject"] == "Contrat de prestation"
    assert created["signatureLevel"] == "SIMPLE"
    assert by[(env["id"], "envelope.sent")]["data"]["status"] == "SENT"
    void = by[(env["id"], "envelope.voided")]["data"]
    assert void["status"] == "VOIDED"
    assert void["voidReason"] == void["void_reason"] == "Erreur de prix"
    expired = by[(expiring["id"], "envelope.expired")]["data"]
    assert expired["status"] == "EXPIRED"
    assert expired["missingSigners"] == expired["missing_signers"]
    assert sorted(expired["missingSigners"]) == ["marie@example.com", "paul@example.com"]
    # arrival order is not promised (deliveries run concurrently), but the times tell the story
    for envelope_id, last in ((env["id"], "envelope.voided"), (expiring["id"], "envelope.expired")):
        story = sorted(
            (p["occurred_at"], p["event"]) for p in payloads if p["envelope_id"] == envelope_id
        )
        assert [event for _, event in story] == ["envelope.created", "envelope.sent", last]

    deliveries = client.deliveries(hook["id"])
    assert len(deliveries) == 6
    assert {d["status"] for d in deliveries} == {"DELIVERED"}
    assert {d["attempt"] for d in deliveries} == {1}
    assert {d["responseStatus"] for d in deliveries} == {200}
    assert {d["eventId"] for d in deliveries} == {p["id"] for p in payloads}


def test_void_without_reason_has_no_null_reason(client: Client, receiver: Receiver):
    hook = client.register(receiver.url("/void"), ["envelope.voided"])
    env = client.draft()
    client.send(env["id"])
    assert client.http.post(f"/envelopes/{env['id']}/void").status_code == 200
    receiver.wait(lambda: receiver.at("/void"), 10)
    (hit,) = receiver.at("/void")
    payload = verify(hit, hook["secret"])
    assert contract_errors(payload) == []
    assert "voidReason" not in payload["data"] and "void_reason" not in payload["data"]


# ---------------------------------------------------------------------------- retries


def test_500_then_200_retries_with_same_ids(client: Client, receiver: Receiver):
    receiver.plan = lambda n: (500, 0.0) if n < 2 else (200, 0.0)
    hook = client.register(receiver.url("/flaky"), ["envelope.created"])
    env = client.draft()
    receiver.wait(lambda: receiver.ok_ids("/flaky"), 15, "a successful retry")
    hits = receiver.at("/flaky")
    assert [h.status for h in hits] == [500, 500, 200]
    payloads = [verify(h, hook["secret"]) for h in hits]
    assert len({p["id"] for p in payloads}) == 1
    assert len({h.headers["webhook-id"] for h in hits}) == 1
    assert len({h.body for h in hits}) == 1  # the same bytes every time
    assert payloads[0]["envelope_id"] == env["id"]
    # the schedule: ~0.2 s then ~1.2 s (±20 %), never sooner
    gaps = [b.at - a.at for a, b in itertools.pairwise(hits)]
    assert gaps[0] >= 0.16 - 0.05 and gaps[1] >= 0.96 - 0.05, gaps

    (delivery,) = client.wait_deliveries(hook["id"], lambda d: d and d[0]["status"] == "DELIVERED")
    assert delivery["attempt"] == 3
    assert delivery["responseStatus"] == 200
    assert delivery["eventId"] == payloads[0]["id"]
    assert "deliveredAt" in delivery and "nextAttemptAt" not in delivery


def test_failed_attempt_is_visible_in_the_log(client: Client, receiver: Receiver):
    receiver.plan = lambda n: (503, 0.0) if n == 0 else (200, 0.0)
    hook = client.register(receiver.url("/log"), ["envelope.created"])
    client.draft()
    (pending,) = client.wait_deliveries(
        hook["id"], lambda d: d and d[0]["attempt"] == 1 and d[0]["status"] == "PENDING", 10
    )
    assert pending["responseStatus"] == 503
    assert pending["responseBody"] == "answer 503"
    assert "nextAttemptAt" in pending
    client.wait_deliveries(hook["id"], lambda d: d[0]["status"] == "DELIVERED", 10)


def test_slow_receiver_times_out_then_delivered(client: Client, receiver: Receiver):
    receiver.plan = lambda n: (200, 1.6) if n == 0 else (200, 0.0)
    hook = client.register(receiver.url("/slow"), ["envelope.created"])
    client.draft()
    (delivery,) = client.wait_deliveries(
        hook["id"], lambda d: d and d[0]["status"] == "DELIVERED", 15
    )
    assert delivery["attempt"] == 2
    hits = receiver.at("/slow")
    assert len(hits) == 2 and hits[0].event_id == hits[1].event_id
    for hit in hits:
        verify(hit, hook["secret"])


def test_receiver_down_then_back_gets_everything(client: Client, receiver: Receiver):
    hook = client.register(receiver.url("/down"), ["envelope.created", "envelope.sent"])
    receiver.stop()
    envelopes = [client.draft(f"Contrat {i}") for i in range(3)]
    for env in envelopes:
        client.send(env["id"])
    client.wait_deliveries(
        hook["id"],
        lambda d: len(d) == 6 and all(x["attempt"] >= 1 and x["status"] == "PENDING" for x in d),
        15,
    )
    down = client.deliveries(hook["id"])
    assert all("error" in d for d in down), down
    receiver.start()
    deliveries = client.wait_deliveries(
        hook["id"], lambda d: all(x["status"] == "DELIVERED" for x in d), 20
    )
    assert all(d["attempt"] >= 2 for d in deliveries)
    ids = receiver.ok_ids("/down")
    assert sorted(ids) == sorted(d["eventId"] for d in deliveries)
    got = {(h.json["envelope_id"], h.json["event"]) for h in receiver.at("/down")}
    assert got == {(e["id"], ev) for e in envelopes for ev in ("envelope.created", "envelope.sent")}
    for hit in receiver.at("/down"):
        verify(hit, hook["secret"])


def test_redirects_are_not_followed(client: Client, receiver: Receiver):
    target = Receiver()
    try:
        receiver.plan = lambda n: (307, 0.0) if n == 0 else (200, 0.0)
        hook = client.register(receiver.url("/redirect"), ["envelope.created"])
        client.draft()
        client.wait_deliveries(hook["id"], lambda d: d and d[0]["status"] == "DELIVERED", 10)
        (first, second) = receiver.at("/redirect")
        assert first.status == 307 and second.status == 200
        assert target.hits == []
    finally:
        target.stop()


# ---------------------------------------------------------------------------- who gets what


def test_only_subscribed_events_of_own_tenant_and_environment(
    bot: Signbot, client: Client, receiver: Receiver
):
    sent_only = client.register(receiver.url("/sent-only"), ["envelope.sent"])
    everything = client.register(receiver.url("/test-all"), ["*"])
    live = client.other_key("live")
    stranger = bot.tenant()
    try:
        live_hook = live.register(receiver.url("/live-all"), ["*"])
        stranger_hook = stranger.register(receiver.url("/stranger"), ["*"])
        # another tenant's and the live environment's events first...
        stranger_env = stranger.draft("Stranger")
        stranger.send(stranger_env["id"])
        live_env = live.draft("Live")
        live.send(live_env["id"])
        # ...then ours
        mine = client.draft("Mine")
        client.send(mine["id"])
        receiver.wait(lambda: len(receiver.at("/test-all")) >= 2, 10, "our events")
        receiver.wait(lambda: len(receiver.at("/live-all")) >= 2, 10, "live events")
        receiver.wait(lambda: len(receiver.at("/stranger")) >= 2, 10, "stranger events")
        time.sleep(0.5)  # anything misrouted would have come by now

        def seen(path: str) -> set[tuple[str, str]]:
            return {(h.json["envelope_id"], h.json["event"]) for h in receiver.at(path)}

        assert seen("/sent-only") == {(mine["id"], "envelope.sent")}
        assert seen("/test-all") == {
            (mine["id"], "envelope.created"),
            (mine["id"], "envelope.sent"),
        }
        both = ("envelope.created", "envelope.sent")
        assert seen("/live-all") == {(live_env["id"], ev) for ev in both}
        assert seen("/stranger") == {(stranger_env["id"], ev) for ev in both}
        for path in ("/sent-only", "/test-all", "/live-all", "/stranger"):
            assert len(receiver.at(path)) == len(seen(path)), path
        for path, secret in (
            ("/sent-only", sent_only["secret"]),
            ("/test-all", everything["secret"]),
            ("/live-all", live_hook["secret"]),
            ("/stranger", stranger_hook["secret"]),
        ):
            for hit in receiver.at(path):
                verify(hit, secret)
    finally:
        live.close()
        stranger.close()


def test_disabled_endpoint_gets_nothing_until_reenabled(client: Client, receiver: Receiver):
    hook = client.register(receiver.url("/toggle"), ["envelope.created"])
    off = client.http.patch(f"/webhooks/{hook['id']}", json={"isActive": False})
    assert off.status_code == 200 and off.json()["isActive"] is False
    quiet = client.draft("While disabled")
    # Let the worker dispatch that event while the endpoint is still disabled (fan-out happens
    # at dispatch time; see tests/jobs for events older than the subscription).
    time.sleep(0.5)
    on = client.http.patch(f"/webhooks/{hook['id']}", json={"isActive": True})
    assert on.status_code == 200 and on.json()["isActive"] is True
    loud = client.draft("After re-enabling")
    receiver.wait(lambda: receiver.at("/toggle"), 10)
    time.sleep(0.3)
    assert [h.json["envelope_id"] for h in receiver.at("/toggle")] == [loud["id"]]
    assert quiet["id"] != loud["id"]


def test_rotated_secret_signs_from_then_on(client: Client, receiver: Receiver):
    hook = client.register(receiver.url("/rotate"), ["envelope.created"])
    client.draft("Before")
    receiver.wait(lambda: len(receiver.at("/rotate")) == 1, 10)
    rotated = client.http.post(f"/webhooks/{hook['id']}/rotate-secret").json()["secret"]
    client.draft("After")
    receiver.wait(lambda: len(receiver.at("/rotate")) == 2, 10)
    before, after = receiver.at("/rotate")
    verify(before, hook["secret"])
    verify(after, rotated)
    with pytest.raises(AssertionError):
        verify(after, hook["secret"])


def test_redeliver_sends_the_same_event_again(client: Client, receiver: Receiver):
    hook = client.register(receiver.url("/again"), ["envelope.created"])
    client.draft()
    (first,) = client.wait_deliveries(hook["id"], lambda d: d and d[0]["status"] == "DELIVERED", 10)
    response = client.http.post(f"/webhooks/{hook['id']}/deliveries/{first['id']}/redeliver")
    assert response.status_code == 202, response.text
    receiver.wait(lambda: len(receiver.at("/again")) == 2, 10, "the redelivery")
    a, b = receiver.at("/again")
    pa, pb = verify(a, hook["secret"]), verify(b, hook["secret"])
    assert pa == pb and pa["id"] == first["eventId"]
    assert a.body == b.body
    assert a.headers["webhook-id"] == b.headers["webhook-id"] == first["eventId"]
    deliveries = client.wait_deliveries(
        hook["id"], lambda d: len(d) == 2 and all(x["status"] == "DELIVERED" for x in d), 10
    )
    assert {d["eventId"] for d in deliveries} == {first["eventId"]}


def test_rolled_back_requests_emit_nothing(client: Client, receiver: Receiver):
    hook = client.register(receiver.url("/rollback"), ["envelope.created", "envelope.sent"])
    doc = client.http.post(
        "/documents", files={"file": ("c.pdf", make_pdf(1), "application/pdf")}
    ).json()
    refused = [
        # modern form: a bad recipient
        client.http.post(
            "/envelopes",
            json={
                "subject": "Refused",
                "documentIds": [doc["id"]],
                "recipients": [{"email": "not-an-email", "name": "X", "role": "SIGNER"}],
            },
        ),
        # one-shot form: documents are recorded in the transaction, then a signer is refused
        client.http.post(
            "/envelopes",
            json={
                "subject": "Refused too",
                "signers": [{"email": "nope", "name": "X"}],
                "documents": [{"name": "c.pdf", "base64Pdf": PDF_B64}],
            },
        ),
        # sending twice: the second is refused
        None,
    ]
    env = client.draft("Sent once")
    client.send(env["id"])
    refused[2] = client.http.post(f"/envelopes/{env['id']}/send")
    for response in refused:
        assert response is not None and response.status_code in (400, 409), response.text
    sentinel = client.draft("Sentinel")
    receiver.wait(
        lambda: sentinel["id"] in {h.json["envelope_id"] for h in receiver.at("/rollback")}, 10
    )
    time.sleep(0.3)
    got = sorted((h.json["envelope_id"], h.json["event"]) for h in receiver.at("/rollback"))
    assert got == sorted(
        [
            (env["id"], "envelope.created"),
            (env["id"], "envelope.sent"),
            (sentinel["id"], "envelope.created"),
        ]
    )
    assert len(client.deliveries(hook["id"])) == 3


# ---------------------------------------------------------------------------- giving up


@pytest.fixture(scope="module")
def quick_bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signbot]:
    """A server whose whole nine-attempt schedule fits in a few seconds (base 10 µs)."""
    data_dir = tmp_path_factory.mktemp("e2e-quick")
    env = {**WORKER_ENV, "SIGNBOT_WEBHOOK_RETRY_BASE_SECONDS": "0.00001"}
    with signbot_serve(data_dir, env) as base:
        db = Database(sqlite_url(data_dir))
        yield Signbot(base, db)
        db.dispose()


def test_always_failing_receiver_ends_failed_after_nine_attempts(
    quick_bot: Signbot, receiver: Receiver
):
    client = quick_bot.tenant()
    try:
        receiver.plan = lambda n: (500, 0.0)
        hook = client.register(receiver.url("/never"), ["envelope.created"])
        client.draft()
        (delivery,) = client.wait_deliveries(
            hook["id"], lambda d: d and d[0]["status"] == "FAILED", 30
        )
        assert delivery["attempt"] == 9
        assert delivery["responseStatus"] == 500
        assert "nextAttemptAt" not in delivery and "deliveredAt" not in delivery
        time.sleep(0.5)
        hits = receiver.at("/never")
        assert len(hits) == 9
        assert len({h.event_id for h in hits}) == 1
        # one failed delivery is not three days of failures: the endpoint stays active
        (listed,) = client.http.get("/webhooks").json()["data"]
        assert listed["isActive"] is True
    finally:
        client.close()


def _age(bot: Signbot, model: type, ident: str, **fields: timedelta) -> None:
    """Move stored times back (what three real days would have done)."""

    def work(session):  # type: ignore[no-untyped-def]
        row = session.get(model, ident)
        for name, ago in fields.items():
            setattr(row, name, utcnow() - ago)
        session.add(row)

    bot.db.run_sync(work)


def test_delivery_older_than_three_days_gives_up(quick_bot: Signbot, receiver: Receiver):
    client = quick_bot.tenant()
    try:
        receiver.plan = lambda n: (500, 0.0)
        hook = client.register(receiver.url("/old"), ["envelope.created"])
        client.draft()
        (delivery,) = client.wait_deliveries(hook["id"], lambda d: len(d) == 1, 10)
        # the delivery was created three days ago; its next failure is its last
        _age(quick_bot, WebhookDelivery, delivery["id"], created_at=timedelta(days=3, seconds=1))
        (done,) = client.wait_deliveries(hook["id"], lambda d: d[0]["status"] == "FAILED", 30)
        assert 1 <= done["attempt"] < 9
    finally:
        client.close()


def test_endpoint_failing_three_days_is_disabled_and_patch_reenables(
    quick_bot: Signbot, receiver: Receiver
):
    client = quick_bot.tenant()
    try:
        failing = True
        receiver.plan = lambda n: (500, 0.0) if failing else (200, 0.0)
        hook = client.register(receiver.url("/sick"), ["envelope.created"])
        client.draft("First failure")
        client.wait_deliveries(hook["id"], lambda d: d and d[0]["attempt"] >= 1, 10)
        # it has been failing since three days ago; the next failure disables it
        _age(quick_bot, WebhookEndpoint, hook["id"], failing_since=timedelta(days=3, seconds=1))
        client.draft("Second failure")
        eventually(
            lambda: client.http.get("/webhooks").json()["data"][0]["isActive"] is False,
            30,
            "the endpoint to be disabled",
        )
        (listed,) = client.http.get("/webhooks").json()["data"]
        assert listed.get("disabledReason")
        done = client.wait_deliveries(
            hook["id"], lambda d: all(x["status"] == "FAILED" for x in d), 30
        )
        before = len(receiver.at("/sick"))
        client.draft("While disabled")
        time.sleep(0.5)
        assert len(client.deliveries(hook["id"])) == len(done)
        assert len(receiver.at("/sick")) == before

        failing = False
        on = client.http.patch(f"/webhooks/{hook['id']}", json={"isActive": True})
        assert on.status_code == 200 and on.json()["isActive"] is True
        assert "disabledReason" not in on.json()
        env = client.draft("Healthy again")
        receiver.wait(
            lambda: env["id"] in {h.json["envelope_id"] for h in receiver.at("/sick")}, 10
        )
        last = [h for h in receiver.at("/sick") if h.json["envelope_id"] == env["id"]]
        assert [h.status for h in last] == [200]
        verify(last[0], hook["secret"])
    finally:
        client.close()


# ---------------------------------------------------------------------------- crashes


class Process:
    """``signbot serve`` as a subprocess whose pid we keep (to SIGKILL it)."""

    def __init__(self, data_dir: Path, env: dict[str, str], tag: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = (data_dir / f"serve-{tag}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--port", str(self.port)],
            env={**os.environ, "SIGNBOT_DATA_DIR": str(data_dir), **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_healthy(self) -> Process:
        wait_healthy(self.base_url, timeout=30, proc=self.proc)
        return self

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        assert self.proc.returncode == -signal.SIGKILL

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not PG_URL, reason="SIGNBOT_TEST_DATABASE_URL is not set"),
        ],
    ),
]


@contextmanager
def database_for(backend: str, data_dir: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """(URL, env for subprocesses) of a fresh, migrated database."""
    with ExitStack() as stack:
        if backend == "postgresql":
            assert PG_URL
            url = stack.enter_context(throwaway_database(PG_URL, prefix="signbot_wh"))
            env = {"SIGNBOT_DATABASE_URL": url}
        else:
            url, env = sqlite_url(data_dir), {}
        db = Database(url)
        migrations.upgrade(db)
        db.dispose()
        yield url, env


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_mid_burst_then_restart_loses_nothing(
    backend: str, tmp_path: Path, receiver: Receiver
):
    receiver.plan = lambda n: (200, 0.2)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with database_for(backend, data_dir) as (url, db_env), ExitStack() as stack:
        db = Database(url)
        stack.callback(db.dispose)
        # An API-only server writes the events (committed in the outbox, nothing delivers yet)
        settings = Settings(
            data_dir=data_dir, database_url=url, role="api", webhook_allow_private=True
        )
        api_base = stack.enter_context(uvicorn_thread(create_app(settings, db)))
        bot = Signbot(api_base, db)
        client = bot.tenant()
        stack.callback(client.close)
        hook = client.register(receiver.url("/burst"), ["envelope.created", "envelope.sent"])
        envelopes = [client.one_shot(f"Burst {i}") for i in range(50)]
        expected = 2 * len(envelopes)

        env = {**WORKER_ENV, **db_env}
        first = Process(data_dir, env, "first")
        stack.callback(first.close)
        first.wait_healthy()
        receiver.wait(lambda: len(receiver.hits) >= 20, 20, "the burst to start")
        first.kill9()
        at_kill = set(receiver.ok_ids())
        assert len(at_kill) < expected, "the kill came too late to be mid-burst"
        held = bot.deliveries(status="delivering")
        assert held, "no delivery was in flight at the kill"

        second = Process(data_dir, env, "second")
        stack.callback(second.close)
        second.wait_healthy()
        # The unclaimed rest goes out at once; leases of the dead process are honoured...
        held_ids = {d.id for d in held}
        eventually(
            lambda: (
                not bot.deliveries(status="pending")
                and {d.id for d in bot.deliveries(status="delivering")} == held_ids
            ),
            30,
            "the unclaimed rest",
        )
        # ...until they run out (60 s; moved back here rather than waited for)
        db.run_sync(
            lambda s: s.exec(  # type: ignore[call-overload]
                update(WebhookDelivery)
                .where(col(WebhookDelivery.status) == "delivering")
                .values(locked_until=utcnow() - timedelta(seconds=1))
            )
        )
        eventually(lambda: len(set(receiver.ok_ids())) >= expected, 30, "every event delivered")
        eventually(
            lambda: all(d.status == "delivered" for d in bot.deliveries()),
            15,
            "every delivery recorded",
        )
        ids = receiver.ok_ids()
        assert len(set(ids)) == expected
        wanted = {(e["id"], ev) for e in envelopes for ev in ("envelope.created", "envelope.sent")}
        assert {(h.json["envelope_id"], h.json["event"]) for h in receiver.hits} == wanted
        # at least once: only what was in flight at the kill may have come twice
        twice = {i for i, n in Counter(ids).items() if n > 1}
        assert twice <= {d.event_id for d in held}
        for hit in receiver.hits[:: max(1, len(receiver.hits) // 10)]:
            verify(hit, hook["secret"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_workers_deliver_each_event_exactly_once(
    backend: str, tmp_path: Path, receiver: Receiver
):
    """Two ``signbot serve`` on one database: claims never overlap (``FOR UPDATE SKIP LOCKED``
    on PostgreSQL; on SQLite the module docstrings promise the single writer serializes
    claimers and fan-out, which is what the ``sqlite`` case holds them to)."""
    receiver.plan = lambda n: (200, 0.03)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with database_for(backend, data_dir) as (url, db_env), ExitStack() as stack:
        env = {**WORKER_ENV, **db_env}
        procs = []
        for tag in ("a", "b"):
            # PostgreSQL: a data dir each, as on two hosts; SQLite: the one file they share
            own = data_dir / tag if backend == "postgresql" else data_dir
            own.mkdir(exist_ok=True)
            proc = Process(own, env, tag)
            stack.callback(proc.close)
            procs.append(proc)
        for proc in procs:
            proc.wait_healthy()
        db = Database(url)
        stack.callback(db.dispose)
        bot = Signbot(procs[0].base_url, db)
        a = bot.tenant()
        stack.callback(a.close)
        b = a.elsewhere(procs[1].base_url)
        stack.callback(b.close)
        hook = a.register(receiver.url("/pair"), ["envelope.created", "envelope.sent"])
        # 100 events, written through both servers while both workers run
        for i in range(50):
            (a if i % 2 else b).one_shot(f"Pair {i}")
        receiver.wait(lambda: len(set(receiver.ok_ids())) >= 100, 45, "100 events")
        time.sleep(1.0)  # a duplicate would have arrived by now
        rows = bot.deliveries(endpoint_id=hook["id"])
        events = {r.event_id for r in rows}
        assert len(rows) == len(events) == 100, (
            f"{len(rows)} deliveries for {len(events)} events: some were fanned out twice"
        )
        counts = Counter(receiver.ok_ids())
        assert len(counts) == 100
        twice = [i for i, n in counts.items() if n > 1]
        assert twice == [], f"{len(twice)} events delivered more than once (claimed twice)"
        assert len(receiver.hits) == 100
        assert Counter(h.headers["webhook-id"] for h in receiver.hits).most_common(1)[0][1] == 1
        deliveries = a.deliveries(hook["id"])
        assert len(deliveries) == 100
        assert {(d["status"], d["attempt"]) for d in deliveries} == {("DELIVERED", 1)}, [
            d for d in deliveries if d["attempt"] != 1
        ]
        for hit in receiver.hits[::10]:
            verify(hit, hook["secret"])
