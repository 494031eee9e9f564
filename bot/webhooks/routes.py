"""Routes: ``/webhooks`` (Certyneo's three) plus our extensions: update, secret rotation,
the delivery log and redelivery. Scope ``webhooks:write`` for all of them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from bot.accounts.context import AuthContext
from bot.web.auth import AuthenticatedRoute, requires
from bot.web.pagination import Page, page_params
from bot.web.paths import API_PREFIX
from bot.webhooks import service, ssrf
from bot.webhooks.schemas import CreateWebhookIn, UpdateWebhookIn, delivery_json, endpoint_json

router = APIRouter(prefix=API_PREFIX, tags=["Webhooks"], route_class=AuthenticatedRoute)


def _policy(request: Request, ctx: AuthContext) -> ssrf.Policy:
    settings = request.app.state.settings
    return ssrf.Policy(
        allow_private=settings.webhook_allow_private,
        own_public_url=request.app.state.public_url,
        require_https=not ctx.is_test,
    )


@router.post("/webhooks", status_code=201, summary="Register webhook")
async def create_webhook(
    body: CreateWebhookIn, request: Request, ctx: AuthContext = requires("webhooks:write")
) -> Any:
    """Answers the signing secret once (``whsec_…``). Private and loopback targets are refused."""
    await ssrf.check_registration(body.url, _policy(request, ctx))
    box = request.app.state.secret_box

    # No Idempotency-Key replay here: it would keep the answer, and so the secret, in clear.
    endpoint, secret = await request.app.state.db.run(
        lambda s: service.create(
            s, ctx, box, url=body.url, events=body.events, description=body.description
        )
    )
    return JSONResponse(endpoint_json(endpoint, secret), status_code=201)


@router.get("/webhooks", summary="List webhooks")
async def list_webhooks(
    request: Request,
    ctx: AuthContext = requires("webhooks:write"),
    page: Page = Depends(page_params),
) -> Any:
    rows, total = await request.app.state.db.run(
        lambda s: service.list_endpoints(s, ctx, offset=page.offset, limit=page.limit)
    )
    return page.wrap([endpoint_json(e) for e in rows], total)


@router.patch("/webhooks/{webhook_id}", summary="Update or re-enable a webhook")
async def update_webhook(
    webhook_id: str,
    body: UpdateWebhookIn,
    request: Request,
    ctx: AuthContext = requires("webhooks:write"),
) -> Any:
    if body.url:
        await ssrf.check_registration(body.url, _policy(request, ctx))
    endpoint = await request.app.state.db.run(lambda s: service.update(s, ctx, webhook_id, body))
    return endpoint_json(endpoint)


@router.post("/webhooks/{webhook_id}/rotate-secret", summary="Rotate a webhook's secret")
async def rotate_secret(
    webhook_id: str, request: Request, ctx: AuthContext = requires("webhooks:write")
) -> Any:
    """A new secret, answered once; deliveries are signed with it from now on."""
    box = request.app.state.secret_box
    endpoint, secret = await request.app.state.db.run(
        lambda s: service.rotate_secret(s, ctx, webhook_id, box)
    )
    return JSONResponse(endpoint_json(endpoint, secret))


@router.delete("/webhooks/{webhook_id}", summary="Unregister")
async def delete_webhook(
    webhook_id: str, request: Request, ctx: AuthContext = requires("webhooks:write")
) -> Any:
    await request.app.state.db.run(lambda s: service.delete(s, ctx, webhook_id))
    return {"success": True}


@router.get("/webhooks/{webhook_id}/deliveries", summary="Delivery log")
async def deliveries(
    webhook_id: str,
    request: Request,
    ctx: AuthContext = requires("webhooks:write"),
    page: Page = Depends(page_params),
) -> Any:
    """Event, attempt count, times, response status and (truncated) body, next attempt."""
    rows, total = await request.app.state.db.run(
        lambda s: service.list_deliveries(s, ctx, webhook_id, offset=page.offset, limit=page.limit)
    )
    return page.wrap([delivery_json(d) for d in rows], total)


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    summary="Deliver an event again",
)
async def redeliver(
    webhook_id: str,
    delivery_id: str,
    request: Request,
    ctx: AuthContext = requires("webhooks:write"),
) -> Any:
    delivery = await request.app.state.db.run(
        lambda s: service.redeliver(s, ctx, webhook_id, delivery_id)
    )
    return JSONResponse(delivery_json(delivery), status_code=202)
