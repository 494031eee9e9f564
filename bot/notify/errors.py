"""The one error a transport raises, and what a retrying caller needs to know about it."""

from __future__ import annotations


class DeliveryError(Exception):
    """A message was not handed over.

    ``permanent`` answers the only question the outbox asks: *will retrying this very message
    ever help?*

    - ``True``: the recipient or the message itself is refused (SMTP 5xx to ``RCPT``/``DATA``,
      an address that cannot be an address, an SMS provider's 4xx about the number or body).
      Retrying sends the same bytes to the same refusal; mark it failed and tell someone.
    - ``False``: everything else — connection refused, timeouts, TLS failures, 4xx replies
      (greylisting, rate limits), and our own configuration being wrong (bad SMTP password,
      STARTTLS required but not offered, rejected sender address, provider credentials).
      Those are not the recipient's fault, and the retries go through once an operator fixes
      the server or the settings.

    The message is safe to log and to show in the API: it never holds a password, a signing
    link or a message body.
    """

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent

    def __repr__(self) -> str:
        return f"DeliveryError({self.message!r}, permanent={self.permanent})"
