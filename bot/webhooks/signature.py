"""Webhook signatures: Certyneo's header and the Standard Webhooks headers. Pure module.

* ``X-Certyneo-Signature``: hex HMAC-SHA256 of the raw body, keyed with the UTF-8 bytes of the
  whole secret string (``whsec_…``) — what Certyneo's consumers verify.
* ``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of
  "id.timestamp.body">`` keyed with the base64-decoded part after ``whsec_``, as the Standard
  Webhooks specification says (verifiable with the ``standardwebhooks`` or svix libraries).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def generate_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def certyneo_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every signature header of one delivery attempt."""
    return {
        "X-Certyneo-Signature": certyneo_signature(secret, body),
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(secret, msg_id, timestamp, body),
    }


def verify_certyneo(secret: str, body: bytes, signature: str) -> bool:
    """Constant-time check of ``X-Certyneo-Signature`` (the bot's own receiver uses it)."""
    return hmac.compare_digest(certyneo_signature(secret, body), signature.strip().lower())
