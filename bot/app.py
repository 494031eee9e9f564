"""``create_app(settings)``: composes the routers, the error mapping and the shared services.

Everything a request needs hangs off ``app.state`` (database, storage, limiter, authenticator,
token secret, public URL), built here from the one ``Settings`` object and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from bot import __version__, metrics, slack_wiring
from bot.accounts.routes import router as accounts_router
from bot.config import Settings
from bot.db import Database, check_reachable, database_unavailable
from bot.deployment import box_key, signing_secret
from bot.documents import purge
from bot.documents.previews import Previews
from bot.documents.routes import router as documents_router
from bot.documents.storage import storage_from_settings
from bot.envelopes.routes import router as envelopes_router
from bot.jobs.tasks import Kind
from bot.jobs.worker import Worker
from bot.secretbox import SecretBox
from bot.signing.finalize import Finalizer
from bot.signing.mailer import Mailer
from bot.signing.pages import router as signing_router
from bot.signing.seal import Sealer
from bot.signing.shared_identity import load_shared_identity
from bot.signing.verify import load_roots
from bot.slack.reminders import SlackReminders
from bot.slack.reminders import schedule as schedule_reminders
from bot.slack.reminders import schedule_housekeeping as schedule_slack_housekeeping
from bot.templates.registry import Registry
from bot.templates.routes import router as templates_router
from bot.web.auth import Authenticator, RateLimitHeaders
from bot.web.bodylimit import BodyLimit
from bot.web.limiter import Limiter, build_limiter
from bot.web.openapi import install_openapi
from bot.web.paths import API_PREFIX
from bot.web.problems import STATUS, install_problem_handlers
from bot.web.requestid import RequestContext
from bot.webhooks.routes import router as webhooks_router

log = logging.getLogger("signbot")


#: Routes that Certyneo does not have: marked as such in the OpenAPI document.
EXTENSIONS = {
    ("GET", f"{API_PREFIX}/documents/{{document_id}}/content"),
    ("POST", f"{API_PREFIX}/envelopes/{{envelope_id}}/void"),
    ("POST", f"{API_PREFIX}/envelopes/{{envelope_id}}/remind"),
    ("GET", f"{API_PREFIX}/templates/{{template_id}}"),
    ("PATCH", f"{API_PREFIX}/webhooks/{{webhook_id}}"),
    ("POST", f"{API_PREFIX}/webhooks/{{webhook_id}}/rotate-secret"),
    ("GET", f"{API_PREFIX}/webhooks/{{webhook_id}}/deliveries"),
    ("POST", f"{API_PREFIX}/webhooks/{{webhook_id}}/deliveries/{{delivery_id}}/redeliver"),
}

DESCRIPTION = """\
signbot's signing service, compatible with the Certyneo API v1: code written for Certyneo works
against it with only the host changed.

Authenticate with `Authorization: Bearer sk_test_…` (or `sk_live_…`; the `Bearer ` prefix is
optional). Errors are `application/problem+json` carrying Certyneo's `{"error", "code"}`.
Rate limit: 100 requests per minute per key, bursts up to 200 (`RateLimit-*` headers on every
answer, `Retry-After` on 429). `Idempotency-Key` is honoured on POST for 24 hours.
Operations marked `x-signbot-extension` are ours, not Certyneo's.
"""


def create_app(
    settings: Settings, db: Database | None = None, *, limiter: Limiter | None = None
) -> FastAPI:
    """The whole ASGI app. The database must already be migrated (``bot.migrations``).

    ``limiter`` replaces the one the settings describe (tests pass one with their own clock).
    """
    db = db or Database(settings.effective_database_url)
    if limiter is None and settings.rate_limit_enabled:
        limiter = build_limiter(settings.redis_url)

    authenticator = Authenticator(db, limiter)
    token_secret = signing_secret(db, settings.secret_key)
    # Its own key: rotating SIGNBOT_SECRET_KEY (to revoke signing links) must not make the
    # stored webhook secrets unreadable.
    secret_box = SecretBox(box_key(db), "webhook-secrets")

    slack = slack_wiring.build(settings, db, SecretBox(box_key(db), "bot-secrets"))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker = None
        registering = None
        if slack is not None and settings.role != "worker":
            # in the background: the provider may be this very process, not answering yet
            registering = asyncio.create_task(slack.ensure_webhook())
        if settings.role in ("all", "worker"):
            kinds = _task_kinds(app, settings)
            if slack is not None:
                kinds.update(slack.task_kinds(timedelta(seconds=settings.jobs_lease_seconds)))
            worker = Worker(settings, db, secret_box, kinds)
            worker.start()
            if slack is not None:
                job = SlackReminders(db, slack.provider, slack.client_for, unseal=slack.unseal)
                schedule_reminders(worker.scheduler, job, max(settings.jobs_interval_seconds, 5))
                schedule_slack_housekeeping(worker.scheduler, db)
            app.state.worker = worker
        flusher = asyncio.create_task(_flush_periodically(authenticator))
        try:
            yield
        finally:
            flusher.cancel()
            if registering is not None:
                registering.cancel()
            if slack is not None:
                await slack.provider.aclose()
            try:
                await authenticator.flush_last_used()
            except Exception as exc:  # the database is down: the rest must still stop
                log.warning("could not record API keys' last use at shutdown: %s", exc)
            if worker is not None:
                await worker.stop()
            if limiter is not None:
                await limiter.close()

    app = FastAPI(
        title="signbot",
        version=__version__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.public_url = settings.effective_public_url
    app.state.storage = storage_from_settings(settings)
    app.state.previews = Previews(app.state.storage)
    if settings.role != "worker":  # only the API reads them (each anchor is checked at load)
        app.state.templates = Registry.load(settings.templates_dir)
    app.state.limiter = limiter
    app.state.authenticator = authenticator
    app.state.token_secret = token_secret
    app.state.secret_box = secret_box

    if settings.role != "worker":  # a worker serves only its health endpoints
        # Matched in order, the busiest (envelopes) first. The routes go straight into the
        # app's own list: on this FastAPI an included router is one more matching pass on
        # every request.
        for router in (
            envelopes_router,
            documents_router,
            accounts_router,
            webhooks_router,
            signing_router,
            templates_router,
        ):
            app.router.routes.extend(router.routes)
    if slack is not None and settings.role != "worker":
        slack_wiring.mount(app, slack)
    app.state.slack = slack
    app.include_router(_operations_router())
    install_problem_handlers(app)
    install_openapi(
        app,
        extension_routes=lambda method, path: (method, path) in EXTENSIONS,
        title="signbot API (Certyneo v1 compatible)",
        version=__version__,
        description=DESCRIPTION,
        security=[{"bearerAuth": []}, {"apiKeyHeader": []}],
    )
    app.add_middleware(RateLimitHeaders)
    # base64 of the largest file, plus room for the JSON around it
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_upload_bytes * 4 // 3 + (1 << 20),
        large_routes=frozenset({f"POST {API_PREFIX}/documents", f"POST {API_PREFIX}/envelopes"}),
    )
    # outermost of ours: request id, access line and latency cover everything inside
    app.add_middleware(RequestContext, observe=settings.metrics_enabled)
    return app


def _task_kinds(app: FastAPI, settings: Settings) -> dict[str, Kind]:
    """The background tasks and their handlers: sealing, email, SMS, removing files."""
    state = app.state
    identity = load_shared_identity(
        state.db, settings.data_dir, settings.seal_p12, settings.seal_p12_password
    )
    sealer = Sealer(
        identity,
        tsa_url=settings.tsa_url,
        extra_trust_roots=load_roots([settings.tsa_roots]) if settings.tsa_roots else (),
    )
    finalizer = Finalizer(state.db, state.storage, sealer, settings.effective_public_url)
    mailer = Mailer(settings, state.db, state.storage, state.token_secret, state.secret_box)
    lease = timedelta(seconds=settings.jobs_lease_seconds)
    return {
        # never given up: an envelope must not stay unsealed (a TSA may be down for a while)
        "finalize": Kind(finalizer, max_attempts=None, lease=lease, concurrency=2),
        "mail": Kind(mailer.mail, max_attempts=8, lease=lease, on_give_up=mailer.give_up_mail),
        "sms": Kind(mailer.sms, max_attempts=6, lease=lease, on_give_up=mailer.give_up_sms),
        # never given up either: a deleted document's files must not linger in the store
        purge.KIND: Kind(purge.Purger(state.storage), max_attempts=None, lease=lease),
    }


async def _flush_periodically(authenticator: Authenticator, every: float = 5.0) -> None:
    """Keys' ``lastUsedAt`` is gathered in memory and written every few seconds."""
    while True:
        await asyncio.sleep(every)
        try:
            await authenticator.flush_last_used()
        except Exception as exc:
            if not database_unavailable(exc):  # an outage is logged once by the worker
                log.exception("could not record API keys' last use")


def _operations_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Alive: answers as soon as the process serves."""
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(request: Request) -> Any:
        """Ready: the database answers (and storage, limiter report their health)."""
        state = request.app.state
        checks: dict[str, str] = {}
        problem = await anyio.to_thread.run_sync(check_reachable, state.db)
        if problem is not None:
            log.warning("readiness: database unreachable: %s", problem)
        # The details go to the log, not to whoever probes.
        checks["database"] = "ok" if problem is None else "unreachable"
        checks["storage"] = "ok" if await state.storage.healthy() else "error"
        if state.limiter is not None:
            # A limiter without Redis falls back to per-process budgets: reported, not fatal.
            checks["ratelimit"] = "ok" if await state.limiter.healthy() else "degraded"
        ready = problem is None and checks["storage"] == "ok"
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics")
    async def prometheus_metrics(request: Request) -> Response:
        """Prometheus metrics (no authentication: keep it off the public internet)."""
        state = request.app.state
        if not state.settings.metrics_enabled:
            return PlainTextResponse("Not found\n", status_code=404)
        body = await metrics.render(state.db)
        return Response(body, media_type=metrics.CONTENT_TYPE_LATEST)

    @router.get("/errors/{code}")
    async def error_page(code: str) -> PlainTextResponse:
        """The page a problem's ``type`` URI points at."""
        if code not in STATUS:
            return PlainTextResponse("Unknown error code\n", status_code=404)
        status, title = STATUS[code]
        return PlainTextResponse(f"{code} (HTTP {status}): {title}\n")

    return router
