"""``ProviderClient``: the bot's only way to the signing service (any Certyneo-compatible API).

The retry policy and the error mapping live in :mod:`bot.provider.wire`. Here: the calls.
The mutating calls that are safe to repeat (upload, create, send, void, remind) always carry an
``Idempotency-Key`` — the caller's, or one generated per call — so the wire retries them like a
GET. (signbot replays the first answer for a key; on a provider that ignores the header a retry
after a 502/503/504 is only as safe as its own handling. signbot's ``remind`` ignores the key:
a retried remind may send one more reminder.) ``create_webhook`` carries none: signbot never
replays an answer holding a secret, so it is not repeated once sent.

Ids are percent-encoded into one path segment: an id typed by a user cannot reach another route.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx

from bot.provider import capabilities as caps
from bot.provider.capabilities import Capabilities
from bot.provider.errors import NotSupported, ProviderRejected
from bot.provider.models import (
    CreateEnvelope,
    Document,
    Envelope,
    Page,
    Reminded,
    Template,
    WebhookSubscription,
)
from bot.provider.wire import RETRY_STATUSES, Wire

T = TypeVar("T")

MAX_PAGES = 1000
"""Safety net when following pagination: a provider that never says "last page"."""


def _seg(value: str) -> str:
    """One path segment, percent-encoded (``../keys`` stays a segment)."""
    if not value:
        raise ValueError("an id is required")
    return quote(value, safe="")


def _new_key() -> str:
    return f"signbot-{uuid.uuid4()}"


class ProviderClient:
    """Async client for any Certyneo-compatible API (signbot's, the hosted Certyneo…).

    ``base_url`` is ``https://host`` or ``https://host/api/v1``. One client per provider and
    API key, kept for the bot's lifetime (it pools connections): ``async with`` it, or call
    :meth:`aclose`. ``transport`` is httpx's seam (``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._wire = Wire(base_url, api_key, timeout=timeout, retries=retries, transport=transport)
        self.base_url = self._wire.base_url
        self._capabilities: Capabilities | None = None
        self._detecting = asyncio.Lock()

    def __repr__(self) -> str:
        return repr(self._wire).replace("Wire(", "ProviderClient(", 1)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._wire.aclose()

    # ----------------------------------------------------------------------------------
    # templates
    # ----------------------------------------------------------------------------------

    async def list_templates(self, page: int = 1, limit: int = 100) -> Page[Template]:
        response = await self._wire.call("GET", "templates", params={"page": page, "limit": limit})
        return self._wire.read(response, Page[Template])

    async def all_templates(self) -> list[Template]:
        """Every template, following the pagination."""
        return await self._all(self.list_templates)

    async def get_template(self, template_id: str) -> Template:
        """Extension: one template with its roles, documents and fields.

        A 404 means "no such template" only where the provider has the route: when
        :meth:`capabilities` says it has not (the list works but the detail route 404s),
        :class:`NotSupported` is raised instead of :class:`ProviderNotFound`."""
        response = await self._wire.send("GET", f"templates/{_seg(template_id)}", idempotent=True)
        if response.status_code == 405 or (
            response.status_code == 404 and not (await self.capabilities()).template_detail
        ):
            raise NotSupported("template_detail")
        if not response.is_success:
            raise self._wire.error(response, "template")
        return self._wire.read(response, Template, "template")

    # ----------------------------------------------------------------------------------
    # documents and envelopes
    # ----------------------------------------------------------------------------------

    async def upload_document(
        self,
        content: bytes,
        filename: str,
        name: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Document:
        """``POST /documents`` (multipart ``file`` + optional ``name``); PDF, PNG or JPEG."""
        lower = filename.lower()
        mime = (
            "image/png"
            if lower.endswith(".png")
            else "image/jpeg"
            if lower.endswith((".jpg", ".jpeg"))
            else "application/pdf"
        )
        response = await self._wire.call(
            "POST",
            "documents",
            files={"file": (filename, content, mime)},
            data={"name": name} if name else None,
            idempotency_key=idempotency_key or _new_key(),
        )
        return self._wire.read(response, Document, "document")

    async def create_envelope(
        self, payload: Mapping[str, Any] | CreateEnvelope, *, idempotency_key: str | None = None
    ) -> Envelope:
        """``POST /envelopes``: a DRAFT. Give ``idempotency_key`` to make a retry of the
        whole operation (e.g. after a crash) return the same envelope; without one, a key is
        generated so this call's own retries are safe."""
        body = payload.to_json() if isinstance(payload, CreateEnvelope) else dict(payload)
        response = await self._wire.call(
            "POST", "envelopes", json=body, idempotency_key=idempotency_key or _new_key()
        )
        return self._wire.read(response, Envelope, "envelope")

    async def send_envelope(
        self, envelope_id: str, *, idempotency_key: str | None = None
    ) -> Envelope:
        response = await self._wire.call(
            "POST",
            f"envelopes/{_seg(envelope_id)}/send",
            idempotency_key=idempotency_key or _new_key(),
            what="envelope",
        )
        return self._wire.read(response, Envelope, "envelope")

    async def get_envelope(self, envelope_id: str) -> Envelope:
        response = await self._wire.call("GET", f"envelopes/{_seg(envelope_id)}", what="envelope")
        return self._wire.read(response, Envelope, "envelope")

    async def delete_envelope(self, envelope_id: str) -> None:
        """Delete a DRAFT (never sent); :class:`ProviderConflict` once it has gone out."""
        await self._wire.call("DELETE", f"envelopes/{_seg(envelope_id)}", what="envelope")

    async def list_envelopes(
        self, status: str | None = None, page: int = 1, limit: int = 20
    ) -> Page[Envelope]:
        params: dict[str, Any] = {"page": page, "limit": limit}
        if status:
            params["status"] = status
        response = await self._wire.call("GET", "envelopes", params=params)
        return self._wire.read(response, Page[Envelope])

    async def void_envelope(
        self, envelope_id: str, reason: str | None = None, *, idempotency_key: str | None = None
    ) -> Envelope:
        """Extension: cancel a sent envelope. :class:`NotSupported` where the provider lacks
        it ("This signing service does not support cancelling a request")."""
        await self._require("void")
        response = await self._wire.call(
            "POST",
            f"envelopes/{_seg(envelope_id)}/void",
            json={"reason": reason} if reason else {},
            idempotency_key=idempotency_key or _new_key(),
            what="envelope",
            feature="void",
        )
        return self._wire.read(response, Envelope, "envelope")

    async def remind_envelope(
        self, envelope_id: str, *, idempotency_key: str | None = None
    ) -> Reminded:
        """Extension: remind every recipient who still has to act, now."""
        await self._require("remind")
        response = await self._wire.call(
            "POST",
            f"envelopes/{_seg(envelope_id)}/remind",
            idempotency_key=idempotency_key or _new_key(),
            what="envelope",
            feature="remind",
        )
        return self._wire.read(response, Reminded, "reminder")

    async def signed_document(self, envelope_id: str) -> bytes:
        """The sealed PDF; :class:`ProviderConflict` before COMPLETED (``retry_after`` set
        while the seal is being made), :class:`ProviderNotFound` once purged."""
        return await self._pdf(f"envelopes/{_seg(envelope_id)}/signed-document")

    async def audit_trail(self, envelope_id: str) -> bytes:
        """The audit-trail PDF; :class:`ProviderConflict` while the envelope is in progress."""
        return await self._pdf(f"envelopes/{_seg(envelope_id)}/audit-trail")

    # ----------------------------------------------------------------------------------
    # webhooks
    # ----------------------------------------------------------------------------------

    async def list_webhooks(self) -> list[WebhookSubscription]:
        """Every subscription of the key's account (secrets are never listed)."""

        async def one(page: int, limit: int) -> Page[WebhookSubscription]:
            params = {"page": page, "limit": limit}
            response = await self._wire.call("GET", "webhooks", params=params, what="webhook list")
            return self._wire.read(response, Page[WebhookSubscription])

        return await self._all(one)

    async def create_webhook(self, url: str, events: list[str]) -> WebhookSubscription:
        """A new subscription; its ``secret`` is in this answer only: store it."""
        response = await self._wire.call("POST", "webhooks", json={"url": url, "events": events})
        return self._wire.read(response, WebhookSubscription, "webhook")

    async def ensure_webhook(self, url: str, events: list[str]) -> WebhookSubscription | None:
        """The subscription for ``url``, created when there is none (idempotent).

        When one exists it is returned as it is — its ``secret`` is ``None``, since providers
        show a secret only when creating it, and its events are not changed. The caller must
        therefore keep the secret from the creation (``secret`` is set only on the call that
        created it); if it was lost, :meth:`rotate_webhook_secret` issues a new one where
        ``capabilities().rotate_secret``, else delete the subscription and ensure again.
        Returns ``None`` when the provider cannot list its subscriptions (404/405 on
        ``GET /webhooks``): whether one exists is unknown, so nothing is created.
        """
        try:
            existing = await self.list_webhooks()
        except ProviderRejected as exc:
            if exc.status in (404, 405):
                return None
            raise
        for hook in existing:
            if hook.url == url:
                return hook
        return await self.create_webhook(url, events)

    async def rotate_webhook_secret(self, webhook_id: str) -> WebhookSubscription:
        """Extension: a new secret (answered once); deliveries are signed with it from now."""
        await self._require("rotate_secret")
        response = await self._wire.call(
            "POST",
            f"webhooks/{_seg(webhook_id)}/rotate-secret",
            what="webhook",
            feature="rotate_secret",
        )
        return self._wire.read(response, WebhookSubscription, "webhook")

    async def delete_webhook(self, webhook_id: str) -> None:
        await self._wire.call("DELETE", f"webhooks/{_seg(webhook_id)}", what="webhook")

    # ----------------------------------------------------------------------------------
    # capabilities
    # ----------------------------------------------------------------------------------

    async def capabilities(self, *, refresh: bool = False) -> Capabilities:
        """Which signbot extensions the provider has; detected once, then cached (see
        :mod:`bot.provider.capabilities` for how)."""
        async with self._detecting:
            if self._capabilities is None or refresh:
                self._capabilities = await self._detect()
            return self._capabilities

    async def _detect(self) -> Capabilities:
        response = await self._wire.send(
            "GET", f"{self._wire.origin}/openapi.json", idempotent=True
        )
        if response.status_code == 200:
            try:
                found = caps.from_openapi(response.json())
            except ValueError:
                found = None
            if found is not None:
                return found
        elif response.status_code == 429 or response.status_code in RETRY_STATUSES:
            raise self._wire.error(response)
        void, remind, rotate, detail = await asyncio.gather(
            self._probe(caps.PROBES["void"]),
            self._probe(caps.PROBES["remind"]),
            self._probe(caps.PROBES["rotate_secret"]),
            self._probe_template_detail(),
        )
        return Capabilities(void=void, remind=remind, template_detail=detail, rotate_secret=rotate)

    async def _probe(self, path: str) -> bool:
        response = await self._wire.send("GET", path, idempotent=True)
        exists = caps.route_exists(response.status_code)
        if exists is None:
            raise self._wire.error(response)
        return exists

    async def _probe_template_detail(self) -> bool:
        first = (await self.list_templates(page=1, limit=1)).data
        if not first:
            return False
        response = await self._wire.send("GET", f"templates/{_seg(first[0].id)}", idempotent=True)
        if response.status_code in (404, 405):
            return False
        if response.is_success:
            return True
        raise self._wire.error(response)

    async def _require(self, feature: str) -> None:
        if not getattr(await self.capabilities(), feature):
            raise NotSupported(feature)

    async def _all(self, fetch: Callable[..., Awaitable[Page[T]]]) -> list[T]:
        out: list[T] = []
        for number in range(1, MAX_PAGES + 1):
            page = await fetch(page=number, limit=100)
            out.extend(page.data)
            if not page.has_more:
                break
        return out

    async def _pdf(self, path: str) -> bytes:
        response = await self._wire.call("GET", path, what="envelope", accept="application/pdf")
        return response.content
