"""Caps on request bodies, so no route can be made to buffer an unbounded body.

Uploads stream and enforce the exact file limit themselves. The two routes that take a file
(``POST /documents``, and ``POST /envelopes`` with the one-shot form's base64 documents) get
the base64 size of the largest file plus room for JSON; every other route, whose JSON the
framework reads whole, gets ``small_bytes`` (1 MiB).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException


class BodyLimit:
    def __init__(
        self,
        app: Any,
        max_bytes: int,
        large_routes: frozenset[str] = frozenset(),
        small_bytes: int = 1 << 20,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.large_routes = large_routes
        self.small_bytes = small_bytes

    async def _refuse(self, send: Any, limit: int) -> None:
        message = f"Request body exceeds {limit} bytes"
        body = json.dumps(
            {
                "error": message,
                "code": "PAYLOAD_TOO_LARGE",
                "title": "Payload too large",
                "status": 413,
                "detail": message,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        large = f"{scope['method']} {scope['path'].rstrip('/')}" in self.large_routes
        limit = self.max_bytes if large else self.small_bytes
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(send, limit)
                    return
        seen = 0
        started = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # An HTTP error passes through the framework's body reading (which turns
                    # other exceptions into a 400) to the problem handler: a 413.
                    raise HTTPException(413, f"Request body exceeds {limit} bytes")
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await self._refuse(send, limit)
