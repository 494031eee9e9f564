"""Signing tokens, derived rather than stored.

``token = base64url(HMAC-SHA256(deployment secret, recipient id + ":" + version))``. Create and
send can therefore return the same token for every recipient (later sequential groups included)
without keeping it anywhere; only its SHA-256 is indexed to find the recipient. Bumping the
recipient's version, or the deployment secret, revokes every token made before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def derive(secret: bytes, recipient_id: str, version: int) -> str:
    mac = hmac.new(secret, f"{recipient_id}:{version}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def lookup_hash(token: str) -> str:
    """What the recipients table indexes: the token itself never touches the database."""
    return hashlib.sha256(token.encode()).hexdigest()


def sign_url(public_url: str, token: str) -> str:
    return f"{public_url}/sign/{token}"
