"""The transactional outbox and the delivery bookkeeping, on a real database (SQLite, and
PostgreSQL when ``SIGNBOT_TEST_DATABASE_URL`` is set), without HTTP or processes.

Each test works in its own tenant; ``dispatch`` is global, so assertions look only at the
tenant's own rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select

from bot import migrations
from bot.accounts import service as accounts
from bot.accounts.context import AuthContext
from bot.db import Database
from bot.jobs.dispatch import dispatch
from bot.jobs.models import OutboxEvent, Task
from bot.jobs.outbox import emit
from bot.jobs.tasks import enqueue
from bot.jobs.worker import housekeeping
from bot.secretbox import SecretBox
from bot.timeutil import utcnow
from bot.webhooks import delivery, retry, service
from bot.webhooks.delivery import Outcome, Work
from bot.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from bot.webhooks.schemas import UpdateWebhookIn
from tests.conftest import PG_URL
from tests.support.pg import throwaway_database

BOX = SecretBox(b"x" * 48, "webhook-secrets")


@pytest.fixture(
    scope="module",
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not PG_URL, reason="SIGNBOT_TEST_DATABASE_URL is not set"),
            ],
        ),
    ],
)
def db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """A database of our own: no running worker dispatches behind the tests' back."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("jobs") / "signbot.db"
        database = Database(f"sqlite:///{Path(path).resolve()}")
        migrations.upgrade(database)
        yield database
        database.dispose()
        return
    assert PG_URL
    with throwaway_database(PG_URL, prefix="signbot_jobs") as url:
        database = Database(url)
        try:
            migrations.upgrade(database)
            yield database
        finally:
            database.dispose()


@dataclass
class T:
    account_id: str
    ctx: AuthContext
    live: AuthContext


@pytest.fixture
def t(db: Database) -> T:
    account = db.run_sync(lambda s: accounts.create_account(s, f"jobs-{uuid.uuid4().hex[:12]}"))
    scopes = frozenset({"webhooks:write"})
    return T(
        account.id,
        AuthContext("key", account.id, "test", scopes),
        AuthContext("key", account.id, "live", scopes),
    )


def _emit(session: Session, ctx: AuthContext, event: str = "envelope.sent") -> Any:
    return emit(
        session,
        account_id=ctx.account_id,
        environment=ctx.environment,
        event=event,
        envelope_id="env_01HZZZZZZZZZZZZZZZZZZZZZZZ",
        data={"envelopeId": "env_01HZZZZZZZZZZZZZZZZZZZZZZZ", "status": "SENT"},
    )


def _endpoint(db: Database, ctx: AuthContext, events: list[str]) -> WebhookEndpoint:
    endpoint, _ = db.run_sync(
        lambda s: service.create(
            s, ctx, BOX, url="https://hooks.example.com/x", events=events, description=""
        )
    )
    return endpoint


def _events(db: Database, account_id: str) -> list[OutboxEvent]:
    return db.run_sync(
        lambda s: list(s.exec(select(OutboxEvent).where(OutboxEvent.account_id == account_id)))
    )


def _deliveries(db: Database, endpoint_id: str) -> list[WebhookDelivery]:
    return db.run_sync(
        lambda s: list(
            s.exec(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id))
        )
    )


# ---------------------------------------------------------------- the outbox


def test_event_committed_with_its_transaction(db: Database, t: T):
    event = db.run_sync(lambda s: _emit(s, t.ctx))
    assert event.id.startswith("evt_")
    (stored,) = _events(db, t.account_id)
    assert stored.id == event.id and stored.dispatched_at is None
    assert stored.event == "envelope.sent" and stored.environment == "test"


def test_rolled_back_transaction_leaves_no_event(db: Database, t: T):
    class Boom(Exception):
        pass

    def work(session: Session) -> None:
        _emit(session, t.ctx)
        session.flush()  # written, then the transaction fails
        raise Boom

    with pytest.raises(Boom):
        db.run_sync(work)
    assert _events(db, t.account_id) == []
    dispatch_all(db)
    assert _events(db, t.account_id) == []


def dispatch_all(db: Database) -> int:
    total = 0
    while True:
        n = db.run_sync(dispatch)
        total += n
        if n == 0:
            return total


def test_dispatch_fans_out_once_to_subscribed_endpoints_of_the_tenant(db: Database, t: T):
    sent = _endpoint(db, t.ctx, ["envelope.sent"])
    created = _endpoint(db, t.ctx, ["envelope.created"])
    live = _endpoint(db, t.live, ["envelope.sent"])
    stranger_account = db.run_sync(
        lambda s: accounts.create_account(s, f"jobs-{uuid.uuid4().hex[:12]}")
    )
    stranger_ctx = AuthContext("key", stranger_account.id, "test", frozenset())
    stranger = _endpoint(db, stranger_ctx, ["envelope.sent"])
    disabled = _endpoint(db, t.ctx, ["envelope.sent"])
    db.run_sync(lambda s: _disable(s, disabled.id))

    event = db.run_sync(lambda s: _emit(s, t.ctx, "envelope.sent"))
    assert dispatch_all(db) >= 1
    (only,) = _deliveries(db, sent.id)
    assert only.event_id == event.id and only.event == "envelope.sent"
    assert only.status == "pending" and only.attempts == 0
    for endpoint in (created, live, stranger, disabled):
        assert _deliveries(db, endpoint.id) == []
    (stored,) = _events(db, t.account_id)
    assert stored.dispatched_at is not None
    # dispatched exactly once
    dispatch_all(db)
    assert len(_deliveries(db, sent.id)) == 1


def _disable(session: Session, endpoint_id: str) -> None:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    assert endpoint is not None
    endpoint.is_active = False
    session.add(endpoint)


def test_events_older_than_the_endpoint_are_not_fanned_out_to_it(db: Database, t: T):
    """An endpoint receives what happens after it is registered, not a backlog from before
    (the worker may be late: down, busy, or simply between two polls)."""
    db.run_sync(lambda s: _emit(s, t.ctx, "envelope.sent"))
    endpoint = _endpoint(db, t.ctx, ["envelope.sent"])
    dispatch_all(db)
    assert _deliveries(db, endpoint.id) == []


# ---------------------------------------------------------------- claims and leases


def _due_delivery(db: Database, t: T) -> tuple[WebhookEndpoint, WebhookDelivery]:
    endpoint = _endpoint(db, t.ctx, ["envelope.sent"])
    db.run_sync(lambda s: _emit(s, t.ctx))
    dispatch_all(db)
    (row,) = _deliveries(db, endpoint.id)
    return endpoint, row


def _claim_all(db: Database, token: str) -> list[str]:
    return db.run_sync(lambda s: delivery.claim(s, token, limit=10_000))


def test_claim_takes_a_lease_that_nobody_else_gets(db: Database, t: T):
    _, row = _due_delivery(db, t)
    mine = _claim_all(db, "a" * 16)
    assert row.id in mine
    assert row.id not in _claim_all(db, "b" * 16)
    (leased,) = _deliveries(db, row.endpoint_id)
    assert leased.status == "delivering" and leased.claim == "a" * 16
    assert leased.locked_until is not None


def test_expired_lease_is_claimed_again(db: Database, t: T):
    _, row = _due_delivery(db, t)
    assert row.id in _claim_all(db, "a" * 16)

    def expire(session: Session) -> None:
        d = session.get(WebhookDelivery, row.id)
        assert d is not None
        d.locked_until = utcnow() - timedelta(seconds=1)
        session.add(d)

    db.run_sync(expire)
    assert row.id in _claim_all(db, "c" * 16)


def test_release_gives_back_only_own_claims(db: Database, t: T):
    _, first = _due_delivery(db, t)
    assert first.id in _claim_all(db, "d" * 16)
    _, second = _due_delivery(db, t)
    assert second.id in _claim_all(db, "e" * 16)
    db.run_sync(lambda s: delivery.release(s, ["d" * 16]))
    back = db.run_sync(lambda s: s.get(WebhookDelivery, first.id))
    still = db.run_sync(lambda s: s.get(WebhookDelivery, second.id))
    assert back.status == "pending" and back.claim is None and back.locked_until is None
    assert still.status == "delivering" and still.claim == "e" * 16


def test_prepare_drops_deliveries_of_disabled_endpoints(db: Database, t: T):
    endpoint, row = _due_delivery(db, t)
    ids = _claim_all(db, "f" * 16)
    db.run_sync(lambda s: _disable(s, endpoint.id))
    work = db.run_sync(lambda s: delivery.prepare(s, BOX, ids))
    assert row.id not in {w.delivery_id for w in work}
    dropped = db.run_sync(lambda s: s.get(WebhookDelivery, row.id))
    assert dropped.status == "failed" and dropped.last_error == "endpoint disabled"


def test_prepare_reads_the_current_secret_and_stable_body(db: Database, t: T):
    endpoint, row = _due_delivery(db, t)
    ids = _claim_all(db, "g" * 16)
    (a,) = [
        w for w in db.run_sync(lambda s: delivery.prepare(s, BOX, ids)) if w.delivery_id == row.id
    ]
    (b,) = [
        w for w in db.run_sync(lambda s: delivery.prepare(s, BOX, ids)) if w.delivery_id == row.id
    ]
    assert a.body == b.body and a.msg_id == row.event_id
    assert a.secret.startswith("whsec_") and a.url == endpoint.url and a.attempt == 1


# ---------------------------------------------------------------- recording outcomes


def _work(row: WebhookDelivery, attempt: int) -> Work:
    return Work(
        row.id,
        attempt,
        "https://hooks.example.com/x",
        "whsec_x",
        row.event_id,
        b"{}",
        row.endpoint_id,
        row.claim,
    )


FAIL = Outcome(False, 500, "nope", None, 12)
OK = Outcome(True, 204, None, None, 7)


def test_failure_schedules_a_retry_then_success_clears_the_failure_clock(db: Database, t: T):
    endpoint, row = _due_delivery(db, t)
    before = utcnow()
    db.run_sync(lambda s: delivery.record(s, _work(row, 1), FAIL, 10))
    d = db.run_sync(lambda s: s.get(WebhookDelivery, row.id))
    assert d.status == "pending" and d.attempts == 1 and d.last_status_code == 500
    wait = (d.next_attempt_at.replace(tzinfo=None) - before.replace(tzinfo=None)).total_seconds()
    assert 8 - 1 <= wait <= 12 + 1
    e = db.run_sync(lambda s: s.get(WebhookEndpoint, endpoint.id))
    assert e.failing_since is not None and e.is_active

    db.run_sync(lambda s: delivery.record(s, _work(row, 2), OK, 10))
    d = db.run_sync(lambda s: s.get(WebhookDelivery, row.id))
    assert d.status == "delivered" and d.attempts == 2 and d.next_attempt_at is None
    assert d.delivered_at is not None and d.last_status_code == 204
    e = db.run_sync(lambda s: s.get(WebhookEndpoint, endpoint.id))
    assert e.failing_since is None
    log = db.run_sync(
        lambda s: list(
            s.exec(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id == row.id)
                .order_by(col(WebhookAttempt.attempt))
            )
        )
    )
    assert [(a.attempt, a.status_code) for a in log] == [(1, 500), (2, 204)]


def test_ninth_failure_gives_up(db: Database, t: T):
    _, row = _due_delivery(db, t)
    for n in range(1, retry.MAX_ATTEMPTS):
        db.run_sync(lambda s, n=n: delivery.record(s, _work(row, n), FAIL, 10))
        assert db.run_sync(lambda s: s.get(WebhookDelivery, row.id)).status == "pending"
    db.run_sync(lambda s: delivery.record(s, _work(row, retry.MAX_ATTEMPTS), FAIL, 10))
    d = db.run_sync(lambda s: s.get(WebhookDelivery, row.id))
    assert d.status == "failed" and d.attempts == 9 and d.next_attempt_at is None


def test_three_days_of_failures_disable_the_endpoint_and_patch_reenables(db: Database, t: T):
    endpoint, row = _due_delivery(db, t)

    def age(session: Session) -> None:
        e = session.get(WebhookEndpoint, endpoint.id)
        assert e is not None
        e.failing_since = utcnow() - timedelta(days=3)
        session.add(e)

    db.run_sync(age)
    db.run_sync(lambda s: delivery.record(s, _work(row, 1), FAIL, 10))
    e = db.run_sync(lambda s: s.get(WebhookEndpoint, endpoint.id))
    assert e.is_active is False and e.disabled_reason

    body = UpdateWebhookIn.model_validate({"isActive": True})
    db.run_sync(lambda s: service.update(s, t.ctx, endpoint.id, body))
    e = db.run_sync(lambda s: s.get(WebhookEndpoint, endpoint.id))
    assert e.is_active is True and e.failing_since is None and e.disabled_reason is None


# ---------------------------------------------------------------- housekeeping


def test_housekeeping_drops_old_finished_rows_only(db: Database, t: T):
    endpoint = _endpoint(db, t.ctx, ["envelope.sent"])
    old = utcnow() - timedelta(days=31)

    def seed(session: Session) -> dict[str, str]:
        ids = {}
        for status in ("delivered", "failed", "pending"):
            event = session.get(OutboxEvent, _emit(session, t.ctx).id)
            assert event is not None
            event.occurred_at = old
            event.dispatched_at = old if status != "pending" else None
            session.add(event)
            d = WebhookDelivery(
                id=f"dlv_{uuid.uuid4().hex[:26].upper()}",
                endpoint_id=endpoint.id,
                event_id=event.id,
                event=event.event,
                status=status,
                created_at=old,
            )
            session.add(d)
            ids[status] = d.id
            ids[f"evt-{status}"] = event.id
        return ids

    ids = db.run_sync(seed)

    def seed_tasks(session: Session) -> dict[str, str]:
        made = {}
        for status in ("done", "failed", "pending"):
            task_id = enqueue(session, "mail", {"to": f"{status}@example.com"})
            session.exec(  # type: ignore[call-overload]
                update(Task)
                .where(col(Task.id) == task_id)
                .values(status=status, finished_at=old if status != "pending" else None)
            )
            made[status] = task_id
        return made

    tasks = db.run_sync(seed_tasks)
    db.run_sync(housekeeping)
    left = {d.id for d in _deliveries(db, endpoint.id)}
    assert left == {ids["pending"]}
    events = {e.id for e in _events(db, t.account_id)}
    assert events == {ids["evt-pending"]}
    kept = db.run_sync(
        lambda s: {x.id for x in s.exec(select(Task).where(col(Task.id).in_(tasks.values())))}
    )
    assert kept == {tasks["pending"]}  # done and given-up tasks go after 30 days
