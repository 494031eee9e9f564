"""Webhook endpoint use cases and the fan-out of events to deliveries. Services never commit."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, func, select

from bot.accounts.context import AuthContext, get_owned
from bot.db import insert_rows, plain_row
from bot.errors import NotFound, ValidationFailed
from bot.ids import looks_like, new_id
from bot.jobs.models import OutboxEvent
from bot.secretbox import SecretBox
from bot.timeutil import utcnow
from bot.webhooks.models import WebhookDelivery, WebhookEndpoint
from bot.webhooks.schemas import UpdateWebhookIn
from bot.webhooks.signature import generate_secret

MAX_ENDPOINTS_PER_TENANT = 50


def get(session: Session, ctx: AuthContext, webhook_id: str) -> WebhookEndpoint:
    return get_owned(session, WebhookEndpoint, "webhook", ctx, webhook_id)


def create(
    session: Session,
    ctx: AuthContext,
    box: SecretBox,
    *,
    url: str,
    events: list[str],
    description: str,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (returned once; stored sealed)."""
    count = session.exec(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(
            WebhookEndpoint.account_id == ctx.account_id,
            WebhookEndpoint.environment == ctx.environment,
        )
    ).one()
    if count >= MAX_ENDPOINTS_PER_TENANT:
        raise ValidationFailed(f"At most {MAX_ENDPOINTS_PER_TENANT} webhooks per environment")
    secret = generate_secret()
    endpoint = WebhookEndpoint(
        id=new_id("webhook"),
        account_id=ctx.account_id,
        environment=ctx.environment,
        url=url,
        events=events,
        description=description,
        secret_sealed=box.seal(secret),
    )
    session.add(endpoint)
    session.flush()
    return endpoint, secret


def list_endpoints(
    session: Session, ctx: AuthContext, *, offset: int, limit: int
) -> tuple[list[WebhookEndpoint], int]:
    where = (
        WebhookEndpoint.account_id == ctx.account_id,
        WebhookEndpoint.environment == ctx.environment,
    )
    rows = list(
        session.exec(
            select(WebhookEndpoint)
            .where(*where)
            .order_by(col(WebhookEndpoint.created_at).desc(), col(WebhookEndpoint.id).desc())
            .offset(offset)
            .limit(limit)
        )
    )
    return rows, session.exec(select(func.count()).select_from(WebhookEndpoint).where(*where)).one()


def update(
    session: Session, ctx: AuthContext, webhook_id: str, body: UpdateWebhookIn
) -> WebhookEndpoint:
    endpoint = get(session, ctx, webhook_id)
    given = body.model_fields_set
    if "url" in given and body.url:
        endpoint.url = body.url
    if "events" in given and body.events:
        endpoint.events = body.events
    if "description" in given:
        endpoint.description = body.description or ""
    if "is_active" in given and body.is_active is not None:
        endpoint.is_active = body.is_active
        if body.is_active:  # re-enabled: the failure clock starts again
            endpoint.failing_since = None
            endpoint.disabled_reason = None
    endpoint.updated_at = utcnow()
    session.add(endpoint)
    return endpoint


def rotate_secret(
    session: Session, ctx: AuthContext, webhook_id: str, box: SecretBox
) -> tuple[WebhookEndpoint, str]:
    endpoint = get(session, ctx, webhook_id)
    secret = generate_secret()
    endpoint.secret_sealed = box.seal(secret)
    endpoint.updated_at = utcnow()
    session.add(endpoint)
    return endpoint, secret


def delete(session: Session, ctx: AuthContext, webhook_id: str) -> None:
    """Remove an endpoint; its deliveries and their log go with it (ON DELETE CASCADE)."""
    session.delete(get(session, ctx, webhook_id))


def list_deliveries(
    session: Session, ctx: AuthContext, webhook_id: str, *, offset: int, limit: int
) -> tuple[list[WebhookDelivery], int]:
    endpoint = get(session, ctx, webhook_id)
    where = WebhookDelivery.endpoint_id == endpoint.id
    rows = list(
        session.exec(
            select(WebhookDelivery)
            .where(where)
            .order_by(col(WebhookDelivery.created_at).desc(), col(WebhookDelivery.id).desc())
            .offset(offset)
            .limit(limit)
        )
    )
    return rows, session.exec(select(func.count()).select_from(WebhookDelivery).where(where)).one()


def redeliver(
    session: Session, ctx: AuthContext, webhook_id: str, delivery_id: str
) -> WebhookDelivery:
    """Queue a past delivery again (same event id, so receivers can deduplicate)."""
    endpoint = get(session, ctx, webhook_id)
    original = (
        session.get(WebhookDelivery, delivery_id) if looks_like("delivery", delivery_id) else None
    )
    if original is None or original.endpoint_id != endpoint.id:
        raise NotFound(f"Delivery {delivery_id[:60]} not found")
    again = WebhookDelivery(
        id=new_id("delivery"),
        endpoint_id=endpoint.id,
        event_id=original.event_id,
        event=original.event,
    )
    session.add(again)
    return again


def fan_out(session: Session, events: Sequence[OutboxEvent]) -> int:
    """One delivery per active endpoint of each event's tenant subscribed to it, for a batch
    of events: each tenant's endpoints are read once and the deliveries written in one go.

    An endpoint hears only of what happened after it was registered, however late the worker
    gets to the event."""
    by_tenant: dict[tuple[str, str], list[WebhookEndpoint]] = {}
    rows = []
    now = utcnow()
    for event in events:
        tenant = (event.account_id, event.environment)
        if tenant not in by_tenant:
            by_tenant[tenant] = list(
                session.exec(
                    select(WebhookEndpoint).where(
                        WebhookEndpoint.account_id == event.account_id,
                        WebhookEndpoint.environment == event.environment,
                        col(WebhookEndpoint.is_active),
                    )
                )
            )
        for endpoint in by_tenant[tenant]:
            if event.event in endpoint.events and endpoint.created_at <= event.occurred_at:
                rows.append(
                    plain_row(
                        WebhookDelivery,
                        id=new_id("delivery"),
                        endpoint_id=endpoint.id,
                        event_id=event.id,
                        event=event.event,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
    insert_rows(session, WebhookDelivery, rows)
    return len(rows)
