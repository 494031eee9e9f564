"""Bearer API keys: who is calling, in which environment, with which scopes.

Keys are looked up by the SHA-256 of the presented secret (one indexed read). A lookup is cached
for at most one second per process, which is what bounds revocation on *other* replicas; the
replica that revokes drops its cache at once, so the very next request there is refused.
401s are answered before the rate limiter runs, so guessing keys spends nobody's budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy import update
from sqlmodel import Session, col

from bot.accounts.context import AuthContext
from bot.accounts.models import ApiKey
from bot.accounts.service import find_key_row, hash_secret, looks_like_secret
from bot.db import Database
from bot.errors import Forbidden, RateLimited, Unauthorized
from bot.timeutil import utcnow
from bot.web.limiter import Limiter

CACHE_SECONDS = 1.0
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass
class _Cached:
    context: AuthContext | None
    """None when the key exists but is revoked."""
    last_used_at: datetime | None
    expires: float


def parse_authorization(header: str | None) -> str:
    """The secret from ``Authorization: Bearer sk_…`` or a bare ``sk_…`` (Certyneo allows both)."""
    if not header:
        raise Unauthorized(
            "Missing API key: send the header Authorization: Bearer sk_test_… or sk_live_…"
        )
    value = header.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    if not looks_like_secret(value):
        raise Unauthorized("Invalid API key")
    return value


class Authenticator:
    def __init__(self, db: Database, limiter: Limiter | None) -> None:
        self.db = db
        self.limiter = limiter
        self._cache: dict[str, _Cached] = {}
        self._used: dict[str, datetime] = {}

    def forget_all(self) -> None:
        """Drop cached lookups (after a revocation on this replica)."""
        self._cache.clear()

    async def _lookup(self, secret: str) -> _Cached | None:
        digest = hash_secret(secret)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached.expires > now:
            return cached

        key = await self.db.read(lambda connection: find_key_row(connection, secret))
        if key is None:
            self._cache.pop(digest, None)
            return None
        context = None
        if key.revoked_at is None:
            context = AuthContext(
                key.id, key.account_id, key.environment, frozenset(key.scopes.split())
            )
        if len(self._cache) > 10_000:
            self._cache.clear()
        cached = _Cached(context, key.last_used_at, now + CACHE_SECONDS)
        self._cache[digest] = cached
        return cached

    async def authenticate(self, request: Request) -> AuthContext:
        secret = parse_authorization(request.headers.get("authorization"))
        cached = await self._lookup(secret)
        if cached is None:
            raise Unauthorized("Invalid API key")
        if cached.context is None:
            raise Unauthorized("This API key has been revoked")
        context = cached.context
        if self.limiter is not None:
            decision = await self.limiter.hit(context.key_id)
            request.state.ratelimit = decision
            if not decision.allowed:
                raise RateLimited(
                    "Rate limit exceeded: 100 requests per minute per key, bursts up to 200; "
                    f"retry in {decision.retry_after} s",
                    decision.retry_after,
                )
        now = utcnow()
        if cached.last_used_at is None or now - cached.last_used_at > LAST_USED_RESOLUTION:
            cached.last_used_at = now
            self._used[context.key_id] = now
        return context

    async def flush_last_used(self) -> int:
        """Write the "last used" times gathered since the previous flush, in one transaction.

        Why not on the request: a write per key per minute on the request path costs a
        commit on the hottest routes; the app flushes every few seconds instead (and at
        shutdown), which keeps ``lastUsedAt`` within a minute of the truth."""
        if not self._used:
            return 0
        used, self._used = self._used, {}

        def write(session: Session) -> None:
            # in one order on every replica: two flushes locking the same keys in different
            # orders deadlock on PostgreSQL
            for key_id, at in sorted(used.items()):
                session.exec(  # type: ignore[call-overload]
                    update(ApiKey).where(col(ApiKey.id) == key_id).values(last_used_at=at)
                )

        try:
            await self.db.run(write)
        except Exception:
            # kept for the next flush (the database may be restarting); newer times win
            for key_id, at in used.items():
                self._used.setdefault(key_id, at)
            raise
        return len(used)


class AuthenticatedRoute(APIRoute):
    """A route that authenticates (and rate-limits) the caller *before* FastAPI reads and
    validates the body, so a broken body from an unknown caller is a 401, not a 400, and a
    known caller's 400 spends budget and carries the ``RateLimit-*`` headers like any answer."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            request.state.auth = await request.app.state.authenticator.authenticate(request)
            return await handler(request)

        return route


def requires(scope: str) -> Any:
    """A FastAPI dependency: an authenticated caller holding ``scope`` (403 otherwise)."""

    async def dependency(request: Request) -> AuthContext:
        context = getattr(request.state, "auth", None)
        if context is None:
            context = await request.app.state.authenticator.authenticate(request)
        if scope not in context.scopes:
            raise Forbidden(f"Insufficient scope: {scope} required")
        return context

    return Depends(dependency)


class RateLimitHeaders:
    """ASGI middleware adding ``RateLimit-*`` (and ``Retry-After``) to every answer of a
    request whose key went through the limiter, errors included."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                decision = scope.get("state", {}).get("ratelimit")
                if decision is not None:
                    headers = list(message.get("headers", []))
                    present = {name.lower() for name, _ in headers}
                    for name, value in decision.headers().items():
                        raw = name.lower().encode()
                        if raw not in present:
                            headers.append((raw, value.encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
