"""Prometheus metrics, served at ``GET /metrics`` by every role.

Counters and histograms live in one module registry (:data:`REGISTRY`, not prometheus_client's
global one), created once per process: many apps in one process (the tests) share them, as
they share the process. The call sites are one line each: :func:`webhook_delivery`,
:func:`task_outcome`, :func:`observe_seal`, and the request middleware (``bot.web.requestid``).

Queue depth and lag are read from the database at scrape time (:func:`queue_stats`), so they
are the deployment's, the same whichever replica is scraped:

- ``signbot_outbox_depth{queue, kind}``: undispatched outbox events (``queue="events"``),
  webhook deliveries pending or in flight (``"webhooks"``), background tasks pending or
  running (``"tasks"``, one series per ``kind``: finalize, mail, sms…);
- ``signbot_outbox_lag_seconds{queue, kind}``: age of the oldest item that is due and not done
  (0 when none: a delivery waiting for its retry time is not late).

Each is one indexed query (``status``/due columns). The tables are named here, not imported
from their packages, so that ``jobs/`` and ``webhooks/`` can report into this module.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from sqlalchemy import case, column, func, select, table
from sqlalchemy.engine import Connection
from sqlmodel.sql.sqltypes import UTCDateTime

from bot import __version__
from bot.timeutil import to_utc, utcnow

if TYPE_CHECKING:
    from bot.db import Database

__all__ = ["CONTENT_TYPE_LATEST", "REGISTRY", "render"]

log = logging.getLogger("signbot.metrics")
T = TypeVar("T")

disable_created_metrics()  # no ``*_created`` twin of every counter and histogram
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

HTTP_DURATION = Histogram(
    "signbot_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status code.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
HTTP_IN_FLIGHT = Gauge(
    "signbot_http_requests_in_flight", "HTTP requests being handled now.", registry=REGISTRY
)
WEBHOOK_DELIVERIES = Counter(
    "signbot_webhook_deliveries",
    "Webhook delivery attempts by outcome: delivered, retry (another attempt scheduled), "
    "failed (given up).",
    ["outcome"],
    registry=REGISTRY,
)
TASKS = Counter(
    "signbot_tasks",
    "Background task runs (finalize = seal, mail, sms…) by kind and outcome: done, retry, "
    "failed (given up).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
SEALS = Counter(
    "signbot_seals",
    "PDF seals (signed documents and audit trails) by outcome: ok, tsa_unavailable, error.",
    ["outcome"],
    registry=REGISTRY,
)
SEAL_DURATION = Histogram(
    "signbot_seal_duration_seconds",
    "Time to seal one PDF (timestamp authority included), successful or not.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
BUILD_INFO = Gauge(
    "signbot_build_info", "The running signbot version (always 1).", ["version"], registry=REGISTRY
)
BUILD_INFO.labels(__version__).set(1)
for _outcome in ("delivered", "retry", "failed"):  # present from the start, at 0
    WEBHOOK_DELIVERIES.labels(_outcome)
for _outcome in ("ok", "tsa_unavailable", "error"):
    SEALS.labels(_outcome)


# ------------------------------------------------------------------ one-line call sites


def webhook_delivery(outcome: str, count: int = 1) -> None:
    """``delivered``, ``retry`` or ``failed``."""
    WEBHOOK_DELIVERIES.labels(outcome).inc(count)


def task_outcome(kind: str, outcome: str) -> None:
    """``done``, ``retry`` or ``failed``."""
    TASKS.labels(kind, outcome).inc()


async def observe_seal(sealing: Awaitable[T]) -> T:
    """Await ``sealing`` (a ``Sealer.seal(...)`` call), counting and timing it."""
    started = time.perf_counter()
    try:
        result = await sealing
    except Exception as exc:
        unavailable = type(exc).__name__ == "TimestampUnavailable"
        SEALS.labels("tsa_unavailable" if unavailable else "error").inc()
        raise
    finally:
        SEAL_DURATION.observe(time.perf_counter() - started)
    SEALS.labels("ok").inc()
    return result


# ------------------------------------------------------------------ queues, read at scrape time

_events = table(
    "outbox_events", column("dispatched_at", UTCDateTime()), column("occurred_at", UTCDateTime())
)
_deliveries = table(
    "webhook_deliveries", column("status"), column("next_attempt_at", UTCDateTime())
)
_tasks = table("tasks", column("kind"), column("status"), column("due_at", UTCDateTime()))


@dataclass(frozen=True)
class QueueStat:
    queue: str
    """``events``, ``webhooks`` or ``tasks``."""
    kind: str
    """The task kind for ``tasks``; empty otherwise."""
    depth: int
    lag_seconds: float
    """Age of the oldest due item not done yet; 0 when none is due."""


def _lag(now: datetime, oldest_due: datetime | None) -> float:
    if oldest_due is None:
        return 0.0
    return max((now - to_utc(oldest_due)).total_seconds(), 0.0)


def queue_stats(connection: Connection, now: datetime) -> list[QueueStat]:
    """Three indexed queries: undispatched events, open deliveries, open tasks by kind."""
    depth, oldest = connection.execute(
        select(func.count(), func.min(_events.c.occurred_at)).where(
            _events.c.dispatched_at.is_(None)
        )
    ).one()
    stats = [QueueStat("events", "", depth, _lag(now, oldest))]

    due = _deliveries.c.next_attempt_at
    depth, oldest = connection.execute(
        select(func.count(), func.min(case((due <= now, due)))).where(
            _deliveries.c.status.in_(("pending", "delivering"))
        )
    ).one()
    stats.append(QueueStat("webhooks", "", depth, _lag(now, oldest)))

    due = _tasks.c.due_at
    rows = connection.execute(
        select(_tasks.c.kind, func.count(), func.min(case((due <= now, due))))
        .where(_tasks.c.status.in_(("pending", "running")))
        .group_by(_tasks.c.kind)
        .order_by(_tasks.c.kind)
    )
    stats.extend(QueueStat("tasks", kind, depth, _lag(now, oldest)) for kind, depth, oldest in rows)
    return stats


class _Snapshot:
    """The families read from the database for one scrape."""

    def __init__(self, stats: list[QueueStat] | None) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "signbot_metrics_database_up",
            "1 when the queue figures below could be read from the database at this scrape.",
            value=0 if self.stats is None else 1,
        )
        yield up
        if self.stats is None:
            return
        depth = GaugeMetricFamily(
            "signbot_outbox_depth",
            "Items waiting or in progress: undispatched events, open webhook deliveries, "
            "pending or running tasks by kind (whole deployment).",
            labels=["queue", "kind"],
        )
        lag = GaugeMetricFamily(
            "signbot_outbox_lag_seconds",
            "Age of the oldest due item not done yet (0 when none is due).",
            labels=["queue", "kind"],
        )
        for stat in self.stats:
            depth.add_metric([stat.queue, stat.kind], stat.depth)
            lag.add_metric([stat.queue, stat.kind], stat.lag_seconds)
        yield depth
        yield lag


async def render(db: Database) -> bytes:
    """The exposition text: this process's metrics, then the queues read from ``db``."""
    now = utcnow()
    try:
        stats: list[QueueStat] | None = await db.read(lambda c: queue_stats(c, now))
    except Exception as exc:  # a scrape still answers (process, HTTP) when the database does not
        log.warning("metrics: could not read the queues: %s", exc)
        stats = None
    return generate_latest(REGISTRY) + generate_latest(_Snapshot(stats))  # type: ignore[arg-type]
