"""Answer helpers shared by the routers: JSON answers and idempotent POSTs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlmodel import Session

from bot.accounts.context import AuthContext
from bot.web import idempotency

Payload = dict[str, Any]
Done = Callable[[Session, int, Payload], None]
"""Called by a handler inside its own transaction with the answer it is about to give."""
Handler = Callable[[Done], Awaitable[tuple[int, Payload]]]


def _nothing_to_keep(session: Session, status: int, payload: Payload) -> None:
    """Without an Idempotency-Key there is no answer to keep."""


async def idempotent(
    request: Request,
    ctx: AuthContext,
    handler: Handler,
    body: bytes | None = None,
    *,
    keep: Callable[[Payload], Payload] | None = None,
    restore: Callable[[Payload], Awaitable[Payload]] | None = None,
) -> JSONResponse:
    """Run ``handler`` once per ``Idempotency-Key`` (when the client sends one).

    The handler calls ``done(session, status, payload)`` in the transaction that does the
    work, so the answer to replay commits with the work itself: a process dying between the
    two can neither lose the answer nor let a retry do the work twice.
    ``body`` is what identifies the request besides method and path: the raw JSON body by
    default; uploads pass the file's hash instead so the file never has to sit in memory.
    ``keep`` strips what must not be stored (signing tokens are derived, never kept) and
    ``restore`` puts it back on a replay.
    """
    key = request.headers.get("idempotency-key")
    if key is None:
        status, payload = await handler(_nothing_to_keep)
        return JSONResponse(payload, status_code=status)
    db = request.app.state.db
    if body is None:
        body = await request.body()
    fp = idempotency.fingerprint(request.method, request.url.path, body)
    replay = await idempotency.claim(db, ctx.account_id, ctx.environment, key, fp)
    if replay is not None:
        payload = await restore(replay.body) if restore else replay.body
        return JSONResponse(
            payload, status_code=replay.status_code, headers={"Idempotent-Replayed": "true"}
        )

    def done(session: Session, status: int, payload: Payload) -> None:
        stored = keep(payload) if keep else payload
        idempotency.store_in(session, ctx.account_id, ctx.environment, key, status, stored)

    try:
        status, payload = await handler(done)
    except BaseException:
        await idempotency.release(db, ctx.account_id, ctx.environment, key)
        raise
    return JSONResponse(payload, status_code=status)
