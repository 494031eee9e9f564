"""PostgreSQL going away under signbot, on a throwaway cluster the test starts itself.

The product rule: a request that meets an unreachable database is answered 503
``UNAVAILABLE`` problem+json with ``Retry-After`` (an HTML page at a signing link), never a 500;
a bug in a query still is a 500. When PostgreSQL is back, the service recovers by itself:
requests succeed, ``/readyz`` is 200, and background work due during the outage (a scheduled
send, its webhook and invitation email) is done once, afterwards.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bot import migrations
from bot.app import create_app
from bot.config import Settings
from bot.db import Database, database_unavailable
from tests.conftest import make_pdf
from tests.support.pgcluster import PgCluster, pg_cluster
from tests.support.servers import (
    cli,
    free_port,
    signbot_serve,
    uvicorn_thread,
    without_signbot_environ,
)

#: After PostgreSQL is back, requests must succeed again within this many seconds.
RECOVERY_SECONDS = 15.0
PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    with pg_cluster("signbot") as running:
        yield running


def _assert_unavailable_problem(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.headers["retry-after"] == "5"
    body = response.json()
    assert body["code"] == "UNAVAILABLE"
    assert body["status"] == 503
    assert "temporarily unavailable" in body["error"]
    assert body["detail"] == body["error"]
    assert body["type"].endswith("/errors/UNAVAILABLE")
    assert body["title"] == "Service unavailable"


# ------------------------------------------------------------------ which errors are outages


def test_connection_errors_are_outages_and_query_errors_are_bugs(cluster: PgCluster) -> None:
    """The rule on real psycopg/SQLAlchemy exceptions from a real server."""
    db = Database(cluster.url)
    try:
        bugs = [
            "SELEC 1",  # syntax
            "SELECT * FROM no_such_table",  # undefined table
            "SELECT 1/0",  # division by zero (DataError)
            "SELECT 'x'::int",  # invalid input
        ]
        for sql in bugs:
            with pytest.raises(Exception) as caught, db.engine.connect() as conn:
                conn.execute(text(sql))
            assert not database_unavailable(caught.value), sql

        # The server cutting this very session (what pg_ctl stop -m fast does to each one).
        with pytest.raises(Exception) as caught, db.engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        assert database_unavailable(caught.value), repr(caught.value)

        # Nobody listening: the client library's own error, wrapped by SQLAlchemy or not.
        nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/signbot"
        with pytest.raises(Exception) as caught:
            Database(nowhere).ping()
        assert database_unavailable(caught.value), repr(caught.value)
        with pytest.raises(psycopg.OperationalError) as raw:
            psycopg.connect(nowhere, connect_timeout=2)
        assert database_unavailable(raw.value)

        assert database_unavailable(PoolTimeout("QueuePool limit of size 10 overflow 10"))
        assert not database_unavailable(ValueError("not a database error"))
    finally:
        db.dispose()


# ------------------------------------------------------------------ in process: the answers


def test_outage_answers_503_then_recovers(
    cluster: PgCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopped database: API 503 problem+json, signer page 503 HTML, /readyz 503, one
    warning for many requests, a query bug still 500; started again: all back, unaided."""
    port = free_port()
    settings = Settings(data_dir=tmp_path, database_url=cluster.url, port=port)
    db = Database(settings.effective_database_url)
    migrations.upgrade(db)

    def work(session):  # type: ignore[no-untyped-def]
        from bot.accounts import service as accounts

        account = accounts.create_account(session, "outage")
        return accounts.create_key(session, account.id, "test", "outage").secret

    secret = db.run_sync(work)
    app = create_app(settings, db)

    @app.get("/test-only/query-bug")
    async def query_bug() -> None:
        await db.read(lambda conn: conn.execute(text("SELECT * FROM no_such_table")))

    headers = {"Authorization": f"Bearer {secret}"}
    try:
        with uvicorn_thread(app, port) as base, httpx.Client(base_url=base, timeout=30) as http:
            assert http.get("/api/v1/account/me", headers=headers).status_code == 200
            assert http.get("/readyz").json()["checks"]["database"] == "ok"

            with caplog.at_level(logging.WARNING, logger="signbot.web"):
                bug = http.get("/test-only/query-bug")
                assert bug.status_code == 500
                assert bug.json()["code"] == "INTERNAL"

                cluster.stop("fast")
                answers = [http.get("/api/v1/account/me", headers=headers) for _ in range(20)]
                valid = {
                    "subject": "x",
                    "documentIds": ["doc_01HG0000000000000000000000"],
                    "recipients": [{"email": "a@example.com", "name": "A", "role": "SIGNER"}],
                }
                answers += [
                    http.post("/api/v1/envelopes", headers=headers, json=valid) for _ in range(5)
                ]
                for answer in answers:
                    _assert_unavailable_problem(answer)

                page = http.get("/sign/not-a-real-token", headers={"Accept-Language": "fr"})
                assert page.status_code == 503
                assert page.headers["content-type"].startswith("text/html")
                assert page.headers["retry-after"] == "5"
                assert page.headers["cache-control"] == "no-store"
                assert "Réessayer" in page.text or "réessayer" in page.text
                assert "Traceback" not in page.text

                ready = http.get("/readyz")
                assert ready.status_code == 503
                assert ready.json()["checks"]["database"] == "unreachable"
                assert ready.json()["status"] == "unavailable"

            web = [r for r in caplog.records if r.name == "signbot.web"]
            bugs = [r for r in web if r.levelno >= logging.ERROR]
            assert len(bugs) == 1 and bugs[0].exc_info, "the query bug is logged with traceback"
            outages = [r for r in web if "database unreachable" in r.getMessage()]
            assert len(outages) == 1, [r.getMessage() for r in outages]  # not one per request
            assert outages[0].levelno == logging.WARNING and not outages[0].exc_info

            cluster.start()
            started = time.monotonic()
            while time.monotonic() - started < RECOVERY_SECONDS:
                if http.get("/api/v1/account/me", headers=headers).status_code == 200:
                    break
                time.sleep(0.1)
            assert http.get("/api/v1/account/me", headers=headers).status_code == 200
            assert http.get("/readyz").status_code == 200
            assert app.state.worker.scheduler.running
    finally:
        db.dispose()


# ------------------------------------------------------------------ a real process under load


class Receiver:
    """A webhook endpoint on loopback that records what it is sent."""

    def __init__(self) -> None:
        self.events: list[tuple[float, dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                receiver.events.append((time.monotonic(), json.loads(self.rfile.read(length))))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def sent_for(self, envelope_id: str) -> list[tuple[float, dict[str, Any]]]:
        return [
            (at, e)
            for at, e in self.events
            if e["event"] == "envelope.sent" and e["data"].get("envelopeId") == envelope_id
        ]


class Load:
    """Clients creating and reading envelopes in background threads for the whole test."""

    def __init__(self, base: str, secret: str, document_id: str, clients: int = 2) -> None:
        self.base = base
        self.secret = secret
        self.document_id = document_id
        self.answers: list[tuple[float, str, int, str, str, str]] = []
        """(monotonic time, request, status, content type, problem code, Retry-After)"""
        self.transport_errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _record(self, what: str, response: httpx.Response) -> None:
        ctype = response.headers.get("content-type", "")
        code = response.json().get("code", "") if ctype.startswith(PROBLEM_JSON) else ""
        retry_after = response.headers.get("retry-after", "")
        self.answers.append(
            (time.monotonic(), what, response.status_code, ctype, code, retry_after)
        )

    def _run(self) -> None:
        body = {
            "subject": "Load during an outage",
            "documentIds": [self.document_id],
            "recipients": [{"email": "load@example.com", "name": "Load", "role": "SIGNER"}],
        }
        headers = {"Authorization": f"Bearer {self.secret}"}
        with httpx.Client(base_url=f"{self.base}/api/v1", headers=headers, timeout=20) as http:
            while not self._stop.is_set():
                try:
                    created = http.post("/envelopes", json=body)
                    self._record("POST /envelopes", created)
                    if created.status_code == 201:
                        got = http.get(f"/envelopes/{created.json()['id']}")
                        self._record("GET /envelopes/{id}", got)
                except Exception as exc:  # the server must keep answering, in good form
                    self.transport_errors.append(repr(exc))
                    time.sleep(0.05)

    def since(self, t: float) -> list[tuple[float, str, int, str, str, str]]:
        return [a for a in list(self.answers) if a[0] >= t]


@dataclass
class Deployment:
    """``signbot serve`` (a subprocess, role all) on a throwaway cluster, with a webhook to a
    local receiver: shared by the outage variants (starting it is the slow part)."""

    cluster: PgCluster
    data_dir: Path
    base: str
    secret: str
    document_id: str
    receiver: Receiver
    api: httpx.Client

    def envelope(self, email: str, **extra: Any) -> dict[str, Any]:
        """Create and send an envelope to ``email``; the send's answer."""
        body = {
            "subject": f"Outage {email}",
            "documentIds": [self.document_id],
            "recipients": [{"email": email, "name": "Signer", "role": "SIGNER"}],
            **extra,
        }
        made = self.api.post("/envelopes", json=body)
        assert made.status_code == 201, made.text
        sent = self.api.post(f"/envelopes/{made.json()['id']}/send")
        assert sent.status_code == 200, sent.text
        return sent.json()

    def log(self) -> str:
        return (self.data_dir / "serve.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    data_dir = tmp_path_factory.mktemp("outage") / "signbot-data"
    data_dir.mkdir()
    env = {
        "SIGNBOT_RATE_LIMIT_ENABLED": "false",  # the load is far above one key's budget
        "SIGNBOT_WEBHOOK_ALLOW_PRIVATE": "1",
        "SIGNBOT_WEBHOOK_RETRY_BASE_SECONDS": "1",
        "SIGNBOT_JOBS_INTERVAL_SECONDS": "0.5",
    }
    # The caller's SIGNBOT_*/SLACK_* settings (Redis, S3, SMTP, Slack) stay out.
    with without_signbot_environ(), pg_cluster("signbot") as cluster, Receiver() as receiver:
        env["SIGNBOT_DATABASE_URL"] = cluster.url
        created = cli(data_dir, "keys", "create", "--env", "test", "--name", "ops", env=env)
        assert created.returncode == 0, created.stderr
        secret = created.stdout.strip().splitlines()[-1]
        with (
            signbot_serve(data_dir, env) as base,
            httpx.Client(
                base_url=f"{base}/api/v1",
                headers={"Authorization": f"Bearer {secret}"},
                timeout=30,
            ) as api,
        ):
            hook = api.post("/webhooks", json={"url": receiver.url, "events": ["envelope.sent"]})
            assert hook.status_code == 201, hook.text
            doc = api.post("/documents", files={"file": ("c.pdf", make_pdf(1), "application/pdf")})
            assert doc.status_code == 201, doc.text
            yield Deployment(cluster, data_dir, base, secret, doc.json()["id"], receiver, api)


@pytest.mark.parametrize("outage", ["restart", "stop-3s-start"])
def test_postgres_restarted_under_load(deployment: Deployment, outage: str) -> None:
    """Under load from two clients: ``pg_ctl restart -m fast``, or a stop, 3 s down and a
    start. Every answer is a success or a 503 problem — zero 500s; the service recovers by
    itself; an envelope sent before and one scheduled into the outage each get exactly one
    ``envelope.sent`` webhook (and the scheduled one its invitation email) after it."""
    d = deployment
    base, cluster, receiver = d.base, d.cluster, d.receiver
    warnings_before = d.log().count("database unreachable: answering 503")
    tag = outage.replace("-", "")

    # Sent before the outage: delivered whenever, but once.
    before = d.envelope(f"before-{tag}@example.com")
    sign_url = before["recipients"][0]["signUrl"]

    with Load(base, d.secret, d.document_id) as load:
        time.sleep(1.0)
        assert any(a[2] == 201 for a in load.answers), load.answers[:5]

        # Due during the outage: the scheduler's send must happen after it, once.
        send_at = datetime.now(UTC) + timedelta(seconds=2)
        scheduled = d.envelope(
            f"scheduled-{tag}@example.com", sendAt=send_at.isoformat().replace("+00:00", "Z")
        )
        assert scheduled["status"] == "SCHEDULED"

        due_in_outage = datetime.now(UTC) < send_at  # (not if sending took over 2 s)
        outage_began = time.monotonic()
        if outage == "restart":
            cluster.restart("fast")
        else:
            cluster.stop("fast")
            down = [
                httpx.get(f"{base}/readyz", timeout=10),
                httpx.get(sign_url, timeout=10),
            ]
            time.sleep(3.0)
            cluster.start()
        back = time.monotonic()

        # Recovery, unaided.
        deadline = back + RECOVERY_SECONDS
        recovered_at = None
        while time.monotonic() < deadline:
            ok = [a for a in load.since(back) if a[2] in (200, 201)]
            ready = httpx.get(f"{base}/readyz", timeout=10).status_code == 200
            if ok and ready:
                recovered_at = max(ok[0][0], back)
                break
            time.sleep(0.1)
        assert recovered_at is not None, "no success within 15 s of PostgreSQL's return"
        time.sleep(1.0)  # some load after the recovery too

    if outage != "restart":
        assert down[0].status_code == 503
        assert down[0].json()["checks"]["database"] == "unreachable"
        assert down[1].status_code == 503
        assert down[1].headers["content-type"].startswith("text/html")
        assert down[1].headers["retry-after"] == "5"
    assert httpx.get(sign_url, timeout=10).status_code == 200
    assert httpx.get(f"{base}/readyz", timeout=10).json()["checks"]["database"] == "ok"

    # Background work due during the outage is done after it, once.
    deadline = time.monotonic() + RECOVERY_SECONDS
    while time.monotonic() < deadline and not (
        receiver.sent_for(scheduled["id"]) and receiver.sent_for(before["id"])
    ):
        time.sleep(0.1)
    time.sleep(1.5)  # room for a duplicate to show up
    late = receiver.sent_for(scheduled["id"])
    assert len(late) == 1, late
    assert len(receiver.sent_for(before["id"])) == 1
    assert len({e["id"] for _, e in receiver.events}) == len(receiver.events)
    if outage != "restart" and due_in_outage:
        assert late[0][0] > back, "the scheduled send happened after PostgreSQL came back"
    assert d.api.get(f"/envelopes/{scheduled['id']}").json()["status"] == "SENT"
    mail = d.data_dir / "mail"
    invitations = list(mail.glob(f"*-invitation-scheduled-{tag}-example-com.eml"))
    assert len(invitations) == 1, invitations

    answers = load.answers
    statuses: dict[int, int] = {}
    for _, _, status, *_ in answers:
        statuses[status] = statuses.get(status, 0) + 1
    unavailable = [a for a in answers if a[2] == 503]
    report = (
        f"{outage}: {len(answers)} answers {statuses}; "
        f"recovered {recovered_at - back:.2f} s after PostgreSQL was back "
        f"({recovered_at - outage_began:.2f} s after the outage began)"
    )
    print(report)
    assert not load.transport_errors, load.transport_errors[:3]
    assert set(statuses) <= {200, 201, 503}, report
    assert all(
        a[3].startswith(PROBLEM_JSON) and a[4] == "UNAVAILABLE" and a[5] == "5" for a in unavailable
    ), unavailable[:3]
    if outage != "restart":
        assert unavailable, f"the load met the 3 s outage: {report}"
    log = d.log()
    assert "unhandled error" not in log
    warnings = log.count("database unreachable: answering 503") - warnings_before
    assert warnings <= 3, f"{warnings} outage warnings: rate-limited, not one per request"
