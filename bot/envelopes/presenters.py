"""Envelope responses in Certyneo's ``Envelope`` shape, plus our marked extensions.

Nulls only where Certyneo's schema says ``x-nullable`` (``signedAt``, ``expiresAt``,
``completedAt``); every other unset member is omitted. ``accessToken`` and ``signUrl`` appear
only in the answers of create and send, as Certyneo does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.envelopes.models import Envelope, EnvelopeField, Recipient
from bot.signing.tokens import sign_url
from bot.timeutil import iso


@dataclass
class EnvelopeAggregate:
    """An envelope with everything its answer needs, loaded in a fixed number of queries."""

    envelope: Envelope
    recipients: list[Recipient]
    document_ids: list[str]
    fields: list[EnvelopeField]


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None and value != "":
        out[key] = value


def recipient_json(
    recipient: Recipient, token: str | None = None, public_url: str = ""
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": recipient.id,
        "email": recipient.email,
        "name": recipient.name,
        "role": recipient.role,
        "status": recipient.status,
        "signedAt": iso(recipient.signed_at),
        "order": recipient.routing_order,
    }
    _put(out, "viewedAt", iso(recipient.viewed_at))
    _put(out, "sentAt", iso(recipient.sent_at))
    _put(out, "declinedAt", iso(recipient.declined_at))
    _put(out, "declineReason", recipient.decline_reason)
    _put(out, "phone", recipient.phone)
    _put(out, "authentication", recipient.authentication)
    _put(out, "locale", recipient.locale)
    # extensions: whether the last email / SMS left, so a failing server is never silent
    _put(out, "emailStatus", recipient.email_status)
    _put(out, "emailError", recipient.email_error)
    _put(out, "smsStatus", recipient.sms_status)
    _put(out, "smsError", recipient.sms_error)
    if token is not None:
        out["accessToken"] = token
        out["signUrl"] = sign_url(public_url, token)
    return out


def field_json(field: EnvelopeField, email: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": field.id,
        "recipientEmail": email,
        "documentIndex": field.document_index,
        "pageNumber": field.page_number,
        "fieldType": field.field_type,
        "x": field.x,
        "y": field.y,
        "width": field.width,
        "height": field.height,
        "required": field.required,
    }
    if field.anchor_text:
        out["anchorText"] = field.anchor_text
        out["anchorPlacement"] = field.anchor_placement
        out["anchorIndex"] = field.anchor_index
    _put(out, "label", field.label)
    if field.options:
        out["options"] = field.options
    # extensions: where the field really goes, and whether its anchor was found
    if field.anchor_text and field.anchor_found is not None:
        out["anchorFound"] = field.anchor_found
    if field.placed_page is not None:
        out["placement"] = {
            "pageNumber": field.placed_page,
            "x": round(field.placed_x, 2),
            "y": round(field.placed_y, 2),
            "width": round(field.placed_width, 2),
            "height": round(field.placed_height, 2),
        }
    return out


def warnings(agg: EnvelopeAggregate) -> list[str]:
    """What the sender should know: anchors not found (the field sits at its coordinates)."""
    return [
        f"fields.{i}: anchor text {f.anchor_text!r} was not found in document "
        f"{f.document_index}; the field is placed at its coordinates (page {f.page_number}, "
        f"x {f.x:g}, y {f.y:g})"
        for i, f in enumerate(agg.fields)
        if f.anchor_text and f.anchor_found is False
    ]


def envelope_json(
    agg: EnvelopeAggregate, tokens: dict[str, str] | None = None, public_url: str = ""
) -> dict[str, Any]:
    env = agg.envelope
    tokens = tokens or {}
    emails = {r.id: r.email for r in agg.recipients}
    out: dict[str, Any] = {
        "id": env.id,
        "subject": env.subject,
        "status": env.status,
        "signatureLevel": env.signature_level,
        "recipients": [recipient_json(r, tokens.get(r.id), public_url) for r in agg.recipients],
        "expiresAt": iso(env.expires_at),
        "createdAt": iso(env.created_at),
        "completedAt": iso(env.completed_at),
        # extensions
        "documentIds": agg.document_ids,
        "fields": [field_json(f, emails.get(f.recipient_id, "")) for f in agg.fields],
        "signingOrder": env.signing_order,
        "category": env.category,
        "tags": env.tags,
        "locale": env.locale,
        "initialsOnEveryPage": env.initials_on_every_page,
        "workspaceId": env.workspace_id,
        "metadata": env.metadata_,
        "environment": env.environment,
        "updatedAt": iso(env.updated_at),
    }
    _put(out, "message", env.message)
    _put(out, "templateId", env.template_id)
    _put(out, "redirectUrl", env.redirect_url)
    _put(out, "sendAt", iso(env.send_at))
    _put(out, "sentAt", iso(env.sent_at))
    _put(out, "voidedAt", iso(env.voided_at))
    _put(out, "voidReason", env.void_reason)
    _put(out, "finishedAt", iso(env.finished_at))
    found = warnings(agg)
    if found:
        out["warnings"] = found
    _put(out, "sealedAt", iso(env.sealed_at))
    out["reminders"] = {
        "intervalDays": env.reminder_interval_days,
        "maxCount": env.reminder_max_count,
        "sent": env.reminders_sent,
    }
    _put(out["reminders"], "nextAt", iso(env.next_reminder_at))
    return out
