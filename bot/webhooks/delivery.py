"""Delivering webhooks: claim due deliveries, POST them signed, record, retry or give up.

Claiming takes a lease (``locked_until``) in its own short transaction, so the HTTP calls run
outside any transaction and a process that dies mid-delivery only delays the row until its lease
runs out — then another worker (or the restarted one) takes it again. On PostgreSQL the claim
uses ``FOR UPDATE SKIP LOCKED`` so concurrent workers never take the same row; on SQLite the
claiming UPDATE holds the database's single write lock, which serializes claimers.
A receiver that got the event but whose answer was lost sees it again with the same ``id`` and
``webhook-id``: at-least-once delivery, deduplicable by design.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

import httpx
from cryptography.exceptions import InvalidTag
from sqlalchemy import bindparam, insert, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from bot import metrics
from bot.db import Database
from bot.jobs.models import OutboxEvent
from bot.secretbox import SecretBox
from bot.timeutil import utcnow
from bot.webhooks import payload, retry, signature, ssrf
from bot.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

log = logging.getLogger("signbot.webhooks")

LEASE = timedelta(seconds=60)
#: Seconds a delivery pass's claim outlives its HTTP calls, at least.
MIN_LEASE_MARGIN = 15.0
BATCH = 50
CONCURRENCY = 16
USER_AGENT = "signbot-webhooks/1"
RESPONSE_KEPT = 1024
"""Bytes of a receiver's answer kept in the delivery log (and read at all)."""


@dataclass(frozen=True)
class Work:
    """Everything one attempt needs, read before the HTTP call."""

    delivery_id: str
    attempt: int
    url: str
    secret: str
    msg_id: str
    body: bytes
    endpoint_id: str
    claim: str | None
    """The lease this attempt runs under; its result is written only while it holds."""


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None
    response: str | None
    error: str | None
    duration_ms: int


def claim(session: Session, token: str, lease: timedelta = LEASE, limit: int = BATCH) -> list[str]:
    """Lease up to ``limit`` due deliveries to the claimer ``token``; returns their ids.

    One conditional UPDATE takes the rows (its WHERE re-checks that they are still due), so
    concurrent claimers never share a row: PostgreSQL skips rows another claimer has locked,
    SQLite lets one writer in at a time."""
    now = utcnow()
    due = or_(
        (col(WebhookDelivery.status) == "pending") & (col(WebhookDelivery.next_attempt_at) <= now),
        (col(WebhookDelivery.status) == "delivering") & (col(WebhookDelivery.locked_until) < now),
    )
    pick = (
        select(WebhookDelivery.id)
        .where(due)
        .order_by(col(WebhookDelivery.next_attempt_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    session.exec(  # type: ignore[call-overload]
        update(WebhookDelivery)
        .where(col(WebhookDelivery.id).in_(pick), due)
        .values(status="delivering", locked_until=now + lease, claim=token)
        .execution_options(synchronize_session=False)
    )
    return list(session.exec(select(WebhookDelivery.id).where(WebhookDelivery.claim == token)))


def prepare(session: Session, box: SecretBox, ids: list[str]) -> list[Work]:
    """The attempts to make, in the claim's order; deliveries whose endpoint is gone or
    disabled are dropped.

    Three queries for the whole batch (deliveries, their endpoints, their events) and one
    secret decryption per endpoint, instead of two lookups and a decryption per delivery."""
    deliveries = list(session.exec(select(WebhookDelivery).where(col(WebhookDelivery.id).in_(ids))))
    position = {delivery_id: i for i, delivery_id in enumerate(ids)}
    deliveries.sort(key=lambda d: position[d.id])
    endpoint_ids = {d.endpoint_id for d in deliveries}
    event_ids = {d.event_id for d in deliveries}
    endpoints = {
        e.id: e
        for e in session.exec(
            select(WebhookEndpoint).where(col(WebhookEndpoint.id).in_(endpoint_ids))
        )
    }
    events = {
        e.id: e for e in session.exec(select(OutboxEvent).where(col(OutboxEvent.id).in_(event_ids)))
    }
    opened: dict[str, str] = {}
    out: list[Work] = []
    for delivery in deliveries:
        endpoint = endpoints.get(delivery.endpoint_id)
        event = events.get(delivery.event_id)
        problem = None
        if endpoint is None:
            problem = "endpoint removed"
        elif not endpoint.is_active:
            problem = "endpoint disabled"
        elif event is None:
            problem = "event no longer stored (older than the retention period)"
        elif endpoint.id not in opened:
            try:
                opened[endpoint.id] = box.open(endpoint.secret_sealed)
            except InvalidTag:
                problem = "signing secret unreadable; rotate the webhook's secret"
        if problem is not None:
            delivery.status = "failed"
            delivery.last_error = problem
            delivery.next_attempt_at = None
            delivery.claim = None
            session.add(delivery)
            continue
        assert endpoint is not None and event is not None
        out.append(
            Work(
                delivery_id=delivery.id,
                attempt=delivery.attempts + 1,
                url=endpoint.url,
                secret=opened[endpoint.id],
                msg_id=event.id,
                body=payload.encode(event),
                endpoint_id=endpoint.id,
                claim=delivery.claim,
            )
        )
    return out


async def attempt(
    client: httpx.AsyncClient, item: Work, policy: ssrf.Policy, timeout: float
) -> Outcome:
    """One POST, bounded as a whole by ``timeout`` (a receiver trickling bytes cannot hold
    the worker) and reading at most 1 KiB of the answer (nor can one sending gigabytes)."""
    started = time.monotonic()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **signature.headers(item.secret, item.msg_id, int(time.time()), item.body),
    }
    try:
        async with asyncio.timeout(timeout):
            target = await ssrf.delivery_target(item.url, policy)
            if isinstance(target, str):
                return Outcome(False, None, None, target, _ms(started))
            async with client.stream(
                "POST",
                target.url,
                content=item.body,
                headers={**headers, **target.headers},
                extensions=target.extensions,
                timeout=timeout,
            ) as response:
                head = b""
                async for chunk in response.aiter_raw():
                    head += chunk
                    if len(head) >= RESPONSE_KEPT:
                        break
    except TimeoutError:
        return Outcome(False, None, None, f"timed out after {timeout:g} s", _ms(started))
    except httpx.TimeoutException:
        return Outcome(False, None, None, f"timed out after {timeout:g} s", _ms(started))
    except httpx.HTTPError as exc:
        return Outcome(False, None, None, f"{type(exc).__name__}: {exc}"[:500], _ms(started))
    text = head[:RESPONSE_KEPT].decode("utf-8", "replace") if head else None
    return Outcome(
        200 <= response.status_code < 300, response.status_code, text, None, _ms(started)
    )


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def record(session: Session, item: Work, outcome: Outcome, base_seconds: float) -> None:
    """Write the attempt's result: delivered, another try scheduled, or given up."""
    now = utcnow()
    delivery = session.get(WebhookDelivery, item.delivery_id)
    if delivery is None or delivery.claim != item.claim:
        return  # the lease ran out and another worker owns the row now
    endpoint = session.get(WebhookEndpoint, item.endpoint_id)
    session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            attempt=item.attempt,
            at=now,
            status_code=outcome.status_code,
            response=outcome.response,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
        )
    )
    delivery.attempts = item.attempt
    delivery.last_attempt_at = now
    delivery.last_status_code = outcome.status_code
    delivery.last_response = outcome.response
    delivery.last_error = outcome.error
    delivery.locked_until = None
    delivery.claim = None
    if outcome.ok:
        delivery.status = "delivered"
        metrics.webhook_delivery("delivered")
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        if endpoint is not None and endpoint.failing_since is not None:
            endpoint.failing_since = None
            session.add(endpoint)
    else:
        if retry.should_give_up(item.attempt, now - delivery.created_at):
            delivery.status = "failed"
            metrics.webhook_delivery("failed")
            delivery.next_attempt_at = None
        else:
            delivery.status = "pending"
            metrics.webhook_delivery("retry")
            delivery.next_attempt_at = now + retry.delay(item.attempt, base_seconds)
        if endpoint is not None:
            endpoint.failing_since = endpoint.failing_since or now
            if now - endpoint.failing_since >= retry.ENDPOINT_DISABLE_AFTER:
                endpoint.is_active = False
                endpoint.disabled_reason = "failing for three days"
                log.warning("webhook %s disabled after three days of failures", endpoint.id)
            session.add(endpoint)
    session.add(delivery)


def record_many(session: Session, results: list[tuple[Work, Outcome]], base_seconds: float) -> None:
    """Write a batch's results in one transaction.

    Failures go through :func:`record` (rare, and their retry arithmetic is per row).
    Successes are two executemany statements — the attempt log and the deliveries — for the
    rows this worker still holds (same lease check as :func:`record`)."""
    ok = [(item, outcome) for item, outcome in results if outcome.ok]
    for item, outcome in results:
        if not outcome.ok:
            record(session, item, outcome, base_seconds)
    if not ok:
        return
    table = WebhookDelivery.__table__  # type: ignore[attr-defined]
    held = {
        (row.id, row.claim)
        for row in session.execute(
            sa_select(table.c.id, table.c.claim).where(
                table.c.id.in_([item.delivery_id for item, _ in ok])
            )
        )
    }
    ok = [(item, outcome) for item, outcome in ok if (item.delivery_id, item.claim) in held]
    metrics.webhook_delivery("delivered", len(ok))
    if not ok:
        return
    now = utcnow()
    session.execute(
        insert(WebhookAttempt.__table__),  # type: ignore[attr-defined]
        [
            {
                "delivery_id": item.delivery_id,
                "attempt": item.attempt,
                "at": now,
                "status_code": outcome.status_code,
                "response": outcome.response,
                "error": None,
                "duration_ms": outcome.duration_ms,
            }
            for item, outcome in ok
        ],
    )
    session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.claim == bindparam("b_claim"))
        .values(
            status="delivered",
            attempts=bindparam("b_attempt"),
            last_attempt_at=now,
            last_status_code=bindparam("b_status"),
            last_response=bindparam("b_response"),
            last_error=None,
            locked_until=None,
            claim=None,
            delivered_at=now,
            next_attempt_at=None,
        ),
        [
            {
                "b_id": item.delivery_id,
                "b_claim": item.claim,
                "b_attempt": item.attempt,
                "b_status": outcome.status_code,
                "b_response": outcome.response,
            }
            for item, outcome in ok
        ],
    )
    session.execute(
        update(WebhookEndpoint)
        .where(col(WebhookEndpoint.id).in_({item.endpoint_id for item, _ in ok}))
        .where(col(WebhookEndpoint.failing_since).is_not(None))
        .values(failing_since=None)
        .execution_options(synchronize_session=False)
    )


class Deliverer:
    """The delivery worker of one process: remembers its claims so that shutdown can give
    back exactly what it holds, never another replica's leases."""

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        policy: ssrf.Policy,
        *,
        base_seconds: float,
        timeout: float,
        client: httpx.AsyncClient | None = None,
        lease_margin: float = 30.0,
    ) -> None:
        """``lease_margin``: seconds a pass's claim outlives its worst case (every HTTP call
        timing out); a replica killed mid-pass has its rows taken over that much later."""
        self.db = db
        self.box = box
        self.policy = policy
        self.base_seconds = base_seconds
        self.timeout = timeout
        self.client = client or httpx.AsyncClient(
            follow_redirects=False, limits=httpx.Limits(max_connections=CONCURRENCY * 2)
        )
        self._claims: set[str] = set()
        # Long enough for a whole pass of timeouts, so a live worker never loses its rows.
        # The margin covers what is not an HTTP call (a pooled connection, prepare, record):
        # never under 15 s, whatever SIGNBOT_JOBS_LEASE_SECONDS says.
        self.lease = timedelta(
            seconds=timeout * -(-BATCH // CONCURRENCY) + max(lease_margin, MIN_LEASE_MARGIN)
        )

    async def run_once(self) -> int:
        """One pass: claim, send concurrently, record. Returns the number of attempts made."""
        token = secrets.token_hex(8)
        self._claims.add(token)
        try:
            ids = await self.db.run(lambda s: claim(s, token, self.lease))
            if not ids:
                return 0
            items = await self.db.run(lambda s: prepare(s, self.box, ids))
            gate = asyncio.Semaphore(CONCURRENCY)

            async def one(item: Work) -> tuple[Work, Outcome]:
                async with gate:
                    outcome = await attempt(self.client, item, self.policy, self.timeout)
                if not outcome.ok:
                    log.info(
                        "webhook delivery %s attempt %d failed: %s",
                        item.delivery_id,
                        item.attempt,
                        outcome.error or outcome.status_code,
                    )
                return item, outcome

            results = list(await asyncio.gather(*(one(item) for item in items)))
            # One transaction for the whole pass: a commit per delivery was a quarter of the
            # worker's time (bench/webhooks.py).
            await self.db.run(lambda s: record_many(s, results, self.base_seconds))
            return len(items)
        finally:
            self._claims.discard(token)

    async def close(self) -> None:
        """Give back leases still held (a pass cut short), then close the HTTP client."""
        if self._claims:
            held = list(self._claims)
            await self.db.run(lambda s: release(s, held))
        await self.client.aclose()


def release(session: Session, claims: list[str]) -> int:
    """Make deliveries leased under ``claims`` and not yet recorded due again at once."""
    result = session.exec(  # type: ignore[call-overload]
        update(WebhookDelivery)
        .where(col(WebhookDelivery.status) == "delivering")
        .where(col(WebhookDelivery.claim).in_(claims))
        .values(status="pending", locked_until=None, claim=None, next_attempt_at=utcnow())
    )
    return result.rowcount or 0
