"""The body of a webhook: both of Certyneo's published forms and our additions.

Top level ``id`` (``evt_…``, stable across retries), ``event``, ``timestamp``, ``envelope_id``,
``occurred_at`` and ``data``. ``data`` holds Certyneo's camelCase fields; the reasons and lists
that Certyneo's webhook page writes in snake_case appear in both spellings.
"""

from __future__ import annotations

import json
from typing import Any

from bot.jobs.models import OutboxEvent
from bot.timeutil import iso

#: camelCase member → its snake_case twin, emitted beside it
TWINS = {
    "declineReason": "decline_reason",
    "missingSigners": "missing_signers",
    "voidReason": "void_reason",
    "auditTrailUrl": "audit_trail_url",
    "signedDocumentUrl": "signed_document_url",
}


def body(event: OutboxEvent) -> dict[str, Any]:
    data = dict(event.data)
    for camel, snake in TWINS.items():
        if camel in data and snake not in data:
            data[snake] = data[camel]
    if "auditTrailUrl" in data and "proof_pdf_url" not in data:
        data["proof_pdf_url"] = data["auditTrailUrl"]
    out: dict[str, Any] = {
        "id": event.id,
        "event": event.event,
        "timestamp": iso(event.occurred_at),
        "occurred_at": iso(event.occurred_at),
        "data": data,
    }
    if event.envelope_id:
        out["envelope_id"] = event.envelope_id
    return out


def encode(event: OutboxEvent) -> bytes:
    """The exact bytes sent and signed (compact, stable key order)."""
    return json.dumps(body(event), separators=(",", ":"), ensure_ascii=False).encode()
