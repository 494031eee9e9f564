"""A fake provider that has **only** Certyneo's routes: no signbot extension, no OpenAPI document.

Just enough of the hosted Certyneo for the provider client's tests: templates list, documents,
envelopes (create, list, get, send, delete), the two downloads (409 until finished, which never
happens here), webhooks (create, list, delete), in memory and consistent. Errors use Certyneo's
plain ``{"error", "code"}`` body (no problem+json, no per-field ``errors``); a route it lacks
answers the framework's own 404 (``{"detail": "Not Found"}``), as an unknown URL would.
``/healthz`` exists only for the test harness (``uvicorn_thread`` waits on it).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

TEMPLATES = [
    {"id": "tpl_nda", "name": "NDA", "description": "Mutual NDA", "signerCount": 2},
    {"id": "tpl_offer", "name": "Offer letter", "signerCount": 1, "documentCount": 1},
]
"""Certyneo's template members only; the offer letter's unset description is omitted."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status)


def _page(items: list[Any], request: Request) -> dict[str, Any]:
    page = max(1, int(request.query_params.get("page", 1)))
    limit = min(100, max(1, int(request.query_params.get("limit", 20))))
    shown = items[(page - 1) * limit : page * limit]
    pages = math.ceil(len(items) / limit) if items else 0
    return {
        "data": shown,
        "pagination": {"total": len(items), "page": page, "pageSize": limit, "pages": pages},
    }


def create_app(api_key: str) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    ids = itertools.count(1)
    documents: dict[str, dict[str, Any]] = {}
    envelopes: dict[str, dict[str, Any]] = {}
    webhooks: dict[str, dict[str, Any]] = {}

    def new_id(prefix: str) -> str:
        return f"{prefix}_{next(ids):026d}"

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Any:
        if request.url.path.startswith("/api/v1/"):
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if given != api_key:
                return _error(401, "UNAUTHORIZED", "Invalid API key")
        return await call_next(request)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/templates")
    async def list_templates(request: Request) -> Any:
        return _page(TEMPLATES, request)

    @app.post("/api/v1/documents", status_code=201)
    async def upload(request: Request) -> Any:
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return _error(400, "VALIDATION_ERROR", "file is required")
        content = await upload.read()
        if not content.startswith(b"%PDF-"):
            return _error(415, "UNSUPPORTED_MEDIA_TYPE", "Only PDF or images are accepted")
        doc = {
            "id": new_id("doc"),
            "name": str(form.get("name") or upload.filename),
            "mimeType": "application/pdf",
            "size": len(content),
            "status": "READY",
            "sha256": hashlib.sha256(content).hexdigest(),
        }
        documents[doc["id"]] = doc
        return doc

    def recipient(raw: dict[str, Any], status: str = "PENDING") -> dict[str, Any]:
        return {
            "id": new_id("rcp"),
            "email": raw["email"],
            "name": raw.get("name") or raw["email"],
            "role": raw.get("role", "SIGNER"),
            "status": status,
            "signedAt": None,
            "accessToken": hashlib.sha256(raw["email"].encode()).hexdigest()[:32],
        }

    def public(envelope: dict[str, Any], tokens: bool) -> dict[str, Any]:
        out = dict(envelope)
        out["recipients"] = [
            {k: v for k, v in r.items() if tokens or k != "accessToken"}
            for r in envelope["recipients"]
        ]
        return out

    @app.post("/api/v1/envelopes", status_code=201)
    async def create(request: Request) -> Any:
        body = await request.json()
        recipients = body.get("recipients") or []
        if not body.get("subject") or not recipients:
            return _error(400, "VALIDATION_ERROR", "subject and recipients are required")
        if bool(body.get("templateId")) == bool(body.get("documentIds")):
            return _error(400, "VALIDATION_ERROR", "Give templateId or documentIds, not both")
        if any("@" not in str(r.get("email", "")) for r in recipients):
            return _error(400, "VALIDATION_ERROR", "Invalid recipient email")
        unknown = [d for d in body.get("documentIds") or [] if d not in documents]
        if unknown:
            return _error(400, "VALIDATION_ERROR", f"Unknown document {unknown[0]}")
        envelope = {
            "id": new_id("env"),
            "subject": body["subject"],
            "status": "DRAFT",
            "signatureLevel": "SIMPLE",
            "recipients": [recipient(r) for r in recipients],
            "expiresAt": None,
            "createdAt": _now(),
            "completedAt": None,
        }
        if body.get("message"):
            envelope["message"] = body["message"]
        envelopes[envelope["id"]] = envelope
        return public(envelope, tokens=True)

    @app.get("/api/v1/envelopes")
    async def list_envelopes(request: Request) -> Any:
        status = request.query_params.get("status")
        rows = [public(e, False) for e in reversed(envelopes.values())]
        return _page([e for e in rows if not status or e["status"] == status], request)

    @app.get("/api/v1/envelopes/{envelope_id}")
    async def get_envelope(envelope_id: str) -> Any:
        if envelope_id not in envelopes:
            return _error(404, "NOT_FOUND", "Envelope not found")
        return public(envelopes[envelope_id], tokens=False)

    @app.delete("/api/v1/envelopes/{envelope_id}")
    async def delete_envelope(envelope_id: str) -> Any:
        envelope = envelopes.get(envelope_id)
        if envelope is None:
            return _error(404, "NOT_FOUND", "Envelope not found")
        if envelope["status"] != "DRAFT":
            return _error(409, "CONFLICT", "Envelope has already been sent and cannot be deleted")
        del envelopes[envelope_id]
        return {"success": True}

    @app.post("/api/v1/envelopes/{envelope_id}/send")
    async def send(envelope_id: str) -> Any:
        envelope = envelopes.get(envelope_id)
        if envelope is None:
            return _error(404, "NOT_FOUND", "Envelope not found")
        if envelope["status"] != "DRAFT":
            return _error(409, "CONFLICT", f"Envelope is {envelope['status']}, not DRAFT")
        envelope["status"] = "SENT"
        for r in envelope["recipients"]:
            r["status"] = "SENT"
        return public(envelope, tokens=True)

    @app.get("/api/v1/envelopes/{envelope_id}/signed-document")
    @app.get("/api/v1/envelopes/{envelope_id}/audit-trail")
    async def download(envelope_id: str) -> Any:
        envelope = envelopes.get(envelope_id)
        if envelope is None:
            return _error(404, "NOT_FOUND", "Envelope not found")
        return _error(409, "CONFLICT", "Envelope is not COMPLETED yet")

    @app.post("/api/v1/webhooks", status_code=201)
    async def create_webhook(request: Request) -> Any:
        body = await request.json()
        url = str(body.get("url", ""))
        if not url.startswith("https://"):
            return _error(400, "VALIDATION_ERROR", "url must be an https URL")
        if url.startswith(("https://127.", "https://localhost")):
            return _error(400, "VALIDATION_ERROR", "URL rejected: private or loopback address")
        hook = {
            "id": new_id("wh"),
            "url": url,
            "events": list(body.get("events") or []),
            "isActive": True,
        }
        webhooks[hook["id"]] = hook
        return {**hook, "secret": "whsec_" + hashlib.sha256(hook["id"].encode()).hexdigest()}

    @app.get("/api/v1/webhooks")
    async def list_webhooks() -> Any:
        return {"data": list(webhooks.values())}  # Certyneo's: no pagination block

    @app.delete("/api/v1/webhooks/{webhook_id}")
    async def delete_webhook(webhook_id: str) -> Any:
        if webhooks.pop(webhook_id, None) is None:
            return _error(404, "NOT_FOUND", "Webhook not found")
        return {"success": True}

    return app
