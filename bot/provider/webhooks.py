"""Verifying a webhook from a Certyneo-compatible provider, for the bot's receiver.

Two schemes, both keyed with the subscription's secret ``whsec_…``:

* ``X-Certyneo-Signature``: hex HMAC-SHA256 of the raw body, keyed with the UTF-8 bytes of the
  whole secret string (Certyneo's; signbot sends it too).
* Standard Webhooks: ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``
  (``v1,<base64>``, possibly several separated by spaces, during a rotation), HMAC-SHA256 of
  ``"{id}.{timestamp}.{body}"`` keyed with the base64-decoded part after ``whsec_``; the
  timestamp must be within ``tolerance`` seconds of now (replays are refused).

Every scheme whose headers are present must verify, and at least one must be present. A
receiver that wants replay protection should also deduplicate on the event ``id``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


class WebhookSignatureError(ValueError):
    """The delivery is not provably from the provider: forged, stale or unsigned."""


def verify(
    raw_body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> dict[str, Any]:
    """The parsed event when the signatures hold, else :class:`WebhookSignatureError`."""
    h = {k.lower(): v for k, v in headers.items()}
    certyneo = h.get("x-certyneo-signature")
    standard = [h.get("webhook-id"), h.get("webhook-timestamp"), h.get("webhook-signature")]
    if not certyneo and not any(standard):
        raise WebhookSignatureError("The webhook carries no signature")
    if certyneo is not None:
        expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
        given = certyneo.strip().lower().encode("utf-8", "replace")
        if not hmac.compare_digest(expected.encode(), given):  # bytes: any header is safe
            raise WebhookSignatureError("The webhook's X-Certyneo-Signature does not match")
    if any(standard):
        msg_id, stamp, signatures = standard
        if not (msg_id and stamp and signatures):
            raise WebhookSignatureError("The webhook's Standard Webhooks headers are incomplete")
        _check_standard(raw_body, msg_id, stamp, signatures, secret, tolerance, now)
    try:
        event = json.loads(raw_body)
    except ValueError:
        raise WebhookSignatureError("The webhook's body is not JSON") from None
    if not isinstance(event, dict):
        raise WebhookSignatureError("The webhook's body is not a JSON object")
    return event


def _check_standard(
    body: bytes,
    msg_id: str,
    stamp: str,
    signatures: str,
    secret: str,
    tolerance: int,
    now: float | None,
) -> None:
    try:
        timestamp = int(stamp.strip())
    except ValueError:
        raise WebhookSignatureError("The webhook's timestamp is not a number") from None
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise WebhookSignatureError("The webhook is too old (a replay?)")
    if timestamp > current + tolerance:
        raise WebhookSignatureError("The webhook's timestamp is in the future")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookSignatureError("The webhook secret is not a whsec_ base64 secret") from None
    signed = f"{msg_id}.{stamp.strip()}.".encode() + body
    expected = hmac.new(key, signed, hashlib.sha256).digest()
    for candidate in signatures.split():
        version, _, encoded = candidate.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(expected, given):
            return
    raise WebhookSignatureError("The webhook's webhook-signature does not match")
