"""The background worker of a ``signbot serve`` process (roles ``all`` and ``worker``).

APScheduler (3.x, ``AsyncIOScheduler``) drives three periodic jobs on the app's event loop:
the outbox (fan-out + webhook deliveries) every ``SIGNBOT_JOBS_INTERVAL_SECONDS``, the envelope
clock (scheduled sends, expiry) and housekeeping (bounded tables). Each job runs alone
(``max_instances=1``) and a late run is coalesced, never queued up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import delete
from sqlmodel import Session, col

from bot.config import Settings
from bot.db import Database, database_unavailable
from bot.envelopes import clock, reminders
from bot.jobs.dispatch import dispatch
from bot.jobs.models import OutboxEvent, Task
from bot.jobs.tasks import BATCH as TASK_BATCH
from bot.jobs.tasks import Kind, TaskRunner
from bot.secretbox import SecretBox
from bot.timeutil import utcnow
from bot.web.idempotency import purge_expired
from bot.webhooks import ssrf
from bot.webhooks.delivery import BATCH, Deliverer
from bot.webhooks.models import WebhookDelivery

log = logging.getLogger("signbot.jobs")

RETENTION = timedelta(days=30)
#: Longest outbox tick: under sustained load a tick still ends (and stop() stays prompt);
#: the next one starts at once since what is left is due already.
TICK_SECONDS = 30.0
#: The first housekeeping pass, after start (then hourly).
HOUSEKEEPING_FIRST = timedelta(minutes=1)
#: At most one warning per this many seconds while the database cannot be reached.
OUTAGE_LOG_SECONDS = 30.0


def housekeeping(session: Session) -> None:
    """Keep tables bounded: finished deliveries (and their attempt log, by cascade),
    dispatched events and finished tasks (done or given up: their payloads hold names and
    texts) older than 30 days go, as do expired idempotency records."""
    cutoff = utcnow() - RETENTION
    session.exec(  # type: ignore[call-overload]
        delete(WebhookDelivery).where(
            col(WebhookDelivery.status).in_(("delivered", "failed")),
            col(WebhookDelivery.created_at) < cutoff,
        )
    )
    session.exec(  # type: ignore[call-overload]
        delete(OutboxEvent).where(
            col(OutboxEvent.dispatched_at).is_not(None), col(OutboxEvent.occurred_at) < cutoff
        )
    )
    session.exec(  # type: ignore[call-overload]
        delete(Task).where(col(Task.status).in_(("done", "failed")), col(Task.finished_at) < cutoff)
    )
    purge_expired(session)


class Worker:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        box: SecretBox,
        kinds: dict[str, Kind] | None = None,
    ) -> None:
        """``kinds``: the task handlers (seal, mail, SMS), composed by the app."""
        self.db = db
        self.tasks = TaskRunner(db, kinds or {})
        self._wake = asyncio.Event()
        self.interval = settings.jobs_interval_seconds
        self.deliverer = Deliverer(
            db,
            box,
            ssrf.Policy(
                allow_private=settings.webhook_allow_private,
                own_public_url=settings.effective_public_url,
                require_https=False,
            ),
            base_seconds=settings.webhook_retry_base_seconds,
            timeout=settings.webhook_timeout_seconds,
            lease_margin=settings.jobs_lease_seconds,
        )
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self._busy = asyncio.Lock()
        self._stopping = False
        self._outage = False
        self._quiet_until = 0.0  # time.monotonic() before which outage warnings are skipped

    async def outbox_tick(self) -> None:
        """Fan out committed events, then deliver what is due; repeat while work remains."""
        deadline = time.monotonic() + TICK_SECONDS
        async with self._busy:
            while not self._stopping and time.monotonic() < deadline:
                dispatched = await self.db.run(dispatch)
                attempted = await self.deliverer.run_once()
                ran = await self.tasks.run_once() if self.tasks.kinds else 0
                if dispatched == 0 and attempted < BATCH and ran < TASK_BATCH:
                    return

    def wake(self) -> None:
        """Run the outbox now rather than at the next tick (after a signature, say)."""
        self._wake.set()

    async def _wakeups(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            if not self._busy.locked():
                await self._guard(self.outbox_tick)()

    async def clock_tick(self) -> None:
        await self.db.run(clock.release_scheduled)
        await self.db.run(clock.expire_due)
        await self.db.run(reminders.remind_due)

    async def housekeeping_tick(self) -> None:
        await self.db.run(housekeeping)

    def start(self) -> None:
        common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        self.scheduler.add_job(
            self._guard(self.outbox_tick), "interval", seconds=self.interval, **common
        )
        self.scheduler.add_job(
            self._guard(self.clock_tick), "interval", seconds=max(self.interval, 5), **common
        )
        # first a minute after start, not an hour: replicas restarted more often than hourly
        # (deploys, autoscaling) must still keep their tables bounded
        self.scheduler.add_job(
            self._guard(self.housekeeping_tick),
            "interval",
            hours=1,
            next_run_time=datetime.now(UTC) + HOUSEKEEPING_FIRST,
            **common,
        )
        self.scheduler.start()
        self._wakeup_task = asyncio.get_running_loop().create_task(self._wakeups())
        log.info("background worker started (every %.3g s)", self.interval)

    def _guard(self, job):  # type: ignore[no-untyped-def]
        """A failing pass is logged and retried on the next tick; it never kills the worker.
        An unreachable database (a restart, a failover) is one line every half minute, not
        a traceback per tick, and its end is logged."""

        async def run() -> None:
            try:
                await job()
            except Exception as exc:
                if not database_unavailable(exc):
                    log.exception("background job %s failed", job.__name__)
                    return
                now = time.monotonic()
                if now >= self._quiet_until:
                    self._quiet_until = now + OUTAGE_LOG_SECONDS
                    log.warning("background work waits for the database: %s", exc)
                self._outage = True
                return
            if self._outage:
                self._outage = False
                self._quiet_until = 0.0
                log.info("the database answers again; background work resumes")

        run.__name__ = job.__name__
        return run

    async def stop(self) -> None:
        """Graceful: no new passes; the one in flight finishes; leases left are given back."""
        self._stopping = True
        self.scheduler.shutdown(wait=False)
        self._wakeup_task.cancel()
        await self.tasks.drain(timeout=10)
        try:
            async with asyncio.timeout(10):
                async with self._busy:
                    pass
        except TimeoutError:
            log.warning("stopping with a delivery pass still running; its leases are released")
        await self.deliverer.close()
