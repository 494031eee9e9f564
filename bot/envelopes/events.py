"""The ``data`` of envelope and recipient events, in Certyneo's field names.

Plain-string members are omitted when unset, never null (typed consumers choke on null).
"""

from __future__ import annotations

from typing import Any

from bot.envelopes.models import Envelope, Recipient
from bot.timeutil import iso


def envelope_data(envelope: Envelope, recipients: list[Recipient], **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "envelopeId": envelope.id,
        "subject": envelope.subject,
        "status": envelope.status,
        "recipientCount": len(recipients),
        "signedCount": sum(1 for r in recipients if r.status == "SIGNED"),
        "signatureLevel": envelope.signature_level,
    }
    data.update({k: v for k, v in extra.items() if v is not None})
    return data


def recipient_data(envelope: Envelope, recipient: Recipient) -> dict[str, Any]:
    data: dict[str, Any] = {
        "envelopeId": envelope.id,
        "status": recipient.status,
        "recipientId": recipient.id,
        "email": recipient.email,
        "name": recipient.name,
        "role": recipient.role,
        "signatureLevel": envelope.signature_level,
    }
    if recipient.signed_at:
        data["signedAt"] = iso(recipient.signed_at)
    if recipient.viewed_at:
        data["viewedAt"] = iso(recipient.viewed_at)
    return data
