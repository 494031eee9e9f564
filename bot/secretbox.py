"""Encryption at rest for secrets we must be able to use again (webhook signing secrets).

API keys are hashed because we only ever compare them; a webhook secret has to sign every
delivery, so it is kept encrypted (AES-256-GCM) under a key derived from the deployment
secret, never in plain text.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class SecretBox:
    def __init__(self, deployment_secret: bytes, purpose: str) -> None:
        self._aead = AESGCM(hashlib.sha256(deployment_secret + b"\0" + purpose.encode()).digest())
        self._aad = purpose.encode()

    def seal(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), self._aad)
        return base64.b64encode(nonce + sealed).decode()

    def open(self, token: str) -> str:
        raw = base64.b64decode(token)
        return self._aead.decrypt(raw[:12], raw[12:], self._aad).decode()
