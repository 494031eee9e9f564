"""Request and response shapes of the webhook routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from bot.timeutil import iso
from bot.validation import Line
from bot.webhooks.models import WebhookDelivery, WebhookEndpoint

EVENTS = (
    "envelope.created",
    "envelope.sent",
    "envelope.completed",
    "envelope.declined",
    "envelope.voided",
    "envelope.expired",
    "envelope.returned_to_sender",
    "envelope.resubmitted",
    "recipient.signed",
    "recipient.viewed",
    "recipient.approved",
)


class _In(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", str_strip_whitespace=True
    )


def _events(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    out: list[str] = []
    for item in value:
        if item == "*":
            return list(EVENTS)
        if item not in EVENTS:
            raise ValueError(f"unknown event {item[:60]!r}; known: {', '.join(EVENTS)}")
        if item not in out:
            out.append(item)
    if not out:
        raise ValueError("at least one event is required")
    return out


class CreateWebhookIn(_In):
    url: Line = Field(max_length=2048)
    events: list[Line] = Field(max_length=20)
    description: Line = Field(default="", max_length=500)

    _check = field_validator("events")(classmethod(lambda cls, v: _events(v)))


class UpdateWebhookIn(_In):
    url: Line | None = Field(default=None, max_length=2048)
    events: list[Line] | None = Field(default=None, max_length=20)
    description: Line | None = Field(default=None, max_length=500)
    is_active: bool | None = None

    _check = field_validator("events")(classmethod(lambda cls, v: _events(v)))


def endpoint_json(endpoint: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": endpoint.events,
        "isActive": endpoint.is_active,
        "createdAt": iso(endpoint.created_at),
    }
    if endpoint.description:
        out["description"] = endpoint.description
    if endpoint.disabled_reason:
        out["disabledReason"] = endpoint.disabled_reason
    if secret is not None:
        out["secret"] = secret
    return out


def delivery_json(delivery: WebhookDelivery) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": delivery.id,
        "eventId": delivery.event_id,
        "event": delivery.event,
        "status": delivery.status.upper(),
        "attempt": delivery.attempts,
        "createdAt": iso(delivery.created_at),
    }
    for key, value in (
        ("lastAttemptAt", iso(delivery.last_attempt_at)),
        ("deliveredAt", iso(delivery.delivered_at)),
        ("responseStatus", delivery.last_status_code),
        ("responseBody", delivery.last_response),
        ("error", delivery.last_error),
        (
            "nextAttemptAt",
            iso(delivery.next_attempt_at) if delivery.status in ("pending", "delivering") else None,
        ),
    ):
        if value is not None:
            out[key] = value
    return out
