"""Routes: ``/account/me``, ``/workspaces`` and ``/keys``. Thin: parse → service → schema."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session

from bot.accounts import service
from bot.accounts.context import AuthContext
from bot.accounts.models import Account, ApiKey
from bot.accounts.schemas import CreateKeyIn, account_json, key_json, workspace_json
from bot.errors import Unauthorized
from bot.web.auth import AuthenticatedRoute, requires
from bot.web.pagination import Page, page_params
from bot.web.paths import API_PREFIX

router = APIRouter(prefix=API_PREFIX, tags=["Account"], route_class=AuthenticatedRoute)


@router.get("/account/me", summary="Get current account")
async def account_me(request: Request, ctx: AuthContext = requires("envelopes:read")) -> Any:
    """The identity tied to the API key (Certyneo's connection check)."""
    account = await request.app.state.db.run(lambda s: s.get(Account, ctx.account_id))
    return account_json(account, ctx.environment)


@router.get("/workspaces", summary="List workspaces")
async def workspaces(
    request: Request,
    ctx: AuthContext = requires("envelopes:read"),
    page: Page = Depends(page_params),
) -> Any:
    rows = await request.app.state.db.run(lambda s: service.list_workspaces(s, ctx.account_id))
    shown = rows[page.offset : page.offset + page.limit]
    return page.wrap([workspace_json(w) for w in shown], len(rows))


@router.post("/keys", status_code=201, summary="Create API key")
async def create_key(
    body: CreateKeyIn, request: Request, ctx: AuthContext = requires("keys:write")
) -> Any:
    """Answers the secret once (``secret``); only its hash is kept."""

    def work(session: Session) -> dict[str, Any]:
        caller = session.get(ApiKey, ctx.key_id)
        if caller is None or caller.revoked_at is not None:  # revoked within the cache window
            raise Unauthorized("This API key has been revoked")
        new = service.create_key(
            session,
            ctx.account_id,
            body.environment or ctx.environment,
            body.name,
            body.scopes,
            minted_by=caller,
        )
        return {**key_json(new.key), "secret": new.secret}

    return JSONResponse(await request.app.state.db.run(work), status_code=201)


@router.get("/keys", summary="List API keys")
async def list_keys(
    request: Request,
    ctx: AuthContext = requires("keys:write"),
    page: Page = Depends(page_params),
) -> Any:
    await request.app.state.authenticator.flush_last_used()  # show this replica's latest use
    rows, total = await request.app.state.db.run(
        lambda s: service.list_keys(
            s, ctx.account_id, ctx.environment, offset=page.offset, limit=page.limit
        )
    )
    return page.wrap([key_json(k) for k in rows], total)


@router.delete("/keys/{key_id}", summary="Revoke API key")
async def revoke_key(
    key_id: str, request: Request, ctx: AuthContext = requires("keys:write")
) -> Any:
    """Revoked keys fail on the very next request on this replica, within 1 s elsewhere."""
    await request.app.state.db.run(
        lambda s: service.revoke_key(s, key_id, ctx.account_id, ctx.environment)
    )
    request.app.state.authenticator.forget_all()
    return {"success": True}
