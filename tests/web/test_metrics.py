"""``GET /metrics`` over real HTTP: Prometheus text that parses, latency by route template (never
a raw id or token), queue depth and lag read from the database, delivery and seal counters.

Counters are process-wide (every app of the test process shares them), so checks compare a
scrape before with one after.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot import migrations
from bot.app import create_app
from bot.config import Settings
from bot.db import Database
from tests.conftest import Server, Tenant, draft, new_tenant
from tests.support.servers import free_port, uvicorn_thread

HISTOGRAM = "signbot_http_request_duration_seconds"
TEMPLATE = re.compile(r"(/([a-z0-9._-]+|\{[a-z_]+\}))+")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str) -> tuple[str, Samples]:
    response = httpx.get(f"{base_url}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def labelled(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (sample, labels) in samples if sample == name]


def wait_until(check: Callable[[], Any], timeout: float = 20.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(every)


def send(tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    envelope = draft(tenant, **overrides)
    sent = tenant.client.post(f"/envelopes/{envelope['id']}/send")
    assert sent.status_code == 200, sent.text
    return sent.json()


def test_latency_by_route_template_and_nothing_identifying(tenant: Tenant, server: Server) -> None:
    envelope = send(tenant)
    envelope_id = envelope["id"]
    sign_url = envelope["recipients"][0]["signUrl"]
    token = sign_url.rsplit("/", 1)[1]
    assert tenant.client.get(f"/envelopes/{envelope_id}").status_code == 200
    assert httpx.get(sign_url, timeout=30).status_code == 200
    assert httpx.get(f"{server.base_url}/no/such/page").status_code == 404

    text, samples = scrape(server.base_url)
    count = f"{HISTOGRAM}_count"
    envelope_route = "/api/v1/envelopes/{envelope_id}"
    assert value(samples, count, method="GET", route=envelope_route, status="200") >= 1
    assert value(samples, count, method="GET", route="/sign/{token}", status="200") >= 1
    assert value(samples, count, method="POST", route="/api/v1/envelopes", status="201") >= 1
    assert value(samples, count, method="GET", route="other", status="404") >= 1
    # buckets from 5 ms to 10 s, and +Inf
    les = {labels["le"] for labels in labelled(samples, f"{HISTOGRAM}_bucket")}
    assert {"0.005", "10.0", "+Inf"} <= les

    # every route label is a template: literal lowercase segments or {parameters}
    for labels in labelled(samples, count):
        assert TEMPLATE.fullmatch(labels["route"]) or labels["route"] == "other", labels
    assert envelope_id not in text and token not in text
    assert value(samples, "signbot_build_info", version="0.1.0") == 1
    assert value(samples, "signbot_metrics_database_up") == 1
    assert any(name.startswith("process_") for name, _ in samples)

    schema = httpx.get(f"{server.base_url}/openapi.json").json()
    assert "/metrics" not in schema["paths"]


def test_seals_counted_once_an_envelope_completes(tenant: Tenant, server: Server) -> None:
    _, before = scrape(server.base_url)
    envelope = send(tenant)
    signed = httpx.post(
        f"{envelope['recipients'][0]['signUrl']}/sign",
        data={"name": "Marie Dubois", "mode": "typed", "typed": "Marie Dubois", "consent": "yes"},
        timeout=30,
    )
    assert signed.status_code == 303, signed.text

    def sealed() -> Samples | None:
        _, now = scrape(server.base_url)
        done = value(now, "signbot_tasks_total", kind="finalize", outcome="done")
        if done > value(before, "signbot_tasks_total", kind="finalize", outcome="done"):
            return now
        return None

    after = wait_until(sealed, timeout=60, every=0.2)
    # the signed document and the audit trail: two seals
    ok = ("signbot_seals_total", {"outcome": "ok"})
    assert value(after, ok[0], **ok[1]) >= value(before, ok[0], **ok[1]) + 2
    seal_count = "signbot_seal_duration_seconds_count"
    assert value(after, seal_count) >= value(before, seal_count) + 2
    assert tenant.client.get(f"/envelopes/{envelope['id']}/signed-document").status_code == 200


@pytest.fixture
def slow_worker(tmp_path: Path) -> Iterator[Server]:
    """A served app whose worker ticks only every minute (so what is due stays due) and retries
    webhooks after ~0.3 s; webhooks to loopback allowed."""
    port = free_port()
    settings = Settings(
        data_dir=tmp_path / "data",
        port=port,
        webhook_allow_private=True,
        jobs_interval_seconds=60,
        webhook_retry_base_seconds=0.3,
        webhook_timeout_seconds=2,
    )
    db = Database(settings.effective_database_url)
    migrations.upgrade(db)
    app = create_app(settings, db)
    with uvicorn_thread(app, port) as base:
        yield Server(base, settings, db, app, "sqlite")
    db.dispose()


def test_outbox_depth_and_lag_with_a_receiver_down(slow_worker: Server) -> None:
    tenant = new_tenant(slow_worker)
    dead = f"http://127.0.0.1:{free_port()}/hooks"  # nothing listens there
    created = tenant.client.post("/webhooks", json={"url": dead, "events": ["*"]})
    assert created.status_code == 201, created.text
    _, before = scrape(slow_worker.base_url)

    envelope = send(tenant)
    time.sleep(0.05)
    # committed events wait for the worker (its next tick is a minute away)
    _, now = scrape(slow_worker.base_url)
    assert value(now, "signbot_outbox_depth", queue="events", kind="") >= 2
    assert value(now, "signbot_outbox_lag_seconds", queue="events", kind="") > 0
    assert value(now, "signbot_outbox_depth", queue="webhooks", kind="") == 0
    assert value(now, "signbot_outbox_lag_seconds", queue="webhooks", kind="") == 0

    # a reminder wakes the worker: events fan out, the deliveries fail and wait for a retry
    reminded = tenant.client.post(f"/envelopes/{envelope['id']}/remind")
    assert reminded.status_code == 200, reminded.text

    def retried_and_late() -> Samples | None:
        _, now = scrape(slow_worker.base_url)
        retries = value(now, "signbot_webhook_deliveries_total", outcome="retry")
        late = value(now, "signbot_outbox_lag_seconds", queue="webhooks", kind="")
        if retries > value(before, "signbot_webhook_deliveries_total", outcome="retry") and late:
            return now
        return None

    now = wait_until(retried_and_late)
    assert value(now, "signbot_outbox_depth", queue="webhooks", kind="") >= 2
    assert value(now, "signbot_outbox_depth", queue="events", kind="") == 0
    assert value(now, "signbot_outbox_lag_seconds", queue="events", kind="") == 0


@pytest.mark.parametrize("enabled", [True, False])
def test_a_worker_serves_health_and_metrics_only(tmp_path: Path, enabled: bool) -> None:
    port = free_port()
    settings = Settings(data_dir=tmp_path, port=port, role="worker", metrics_enabled=enabled)
    db = Database(settings.effective_database_url)
    migrations.upgrade(db)
    with uvicorn_thread(create_app(settings, db), port) as base:
        assert httpx.get(f"{base}/api/v1/envelopes").status_code == 404
        assert httpx.get(f"{base}/readyz").status_code == 200
        metrics = httpx.get(f"{base}/metrics")
        if enabled:
            assert metrics.status_code == 200
            assert "signbot_outbox_depth" in metrics.text
        else:
            assert metrics.status_code == 404
    db.dispose()
