"""One-time codes (``authentication: "EMAIL_OTP"``): a 6-digit code mailed to the recipient,
required before the document is shown or acted on.

The code is stored only as an HMAC bound to the recipient and its token version; it lives 10
minutes, allows 5 wrong tries (the fifth burns it) and at most 5 codes are sent per hour, so a
link cannot be used to flood an inbox. Once accepted, the browser holds a short-lived signed
cookie proving it, scoped to that link.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlmodel import Session

from bot.envelopes import audit, notices
from bot.envelopes.models import Recipient
from bot.errors import IllegalTransition
from bot.signing.ceremony import Visit, find_recipient, load_envelope, own_row, page_state
from bot.timeutil import to_utc, utcnow

DIGITS = 6
VALIDITY = timedelta(minutes=10)
MAX_ATTEMPTS = 5
MAX_SENDS = 5
WINDOW = timedelta(hours=1)
SESSION = timedelta(hours=2)


def _code_hash(secret: bytes, recipient: Recipient, code: str) -> str:
    message = f"otp:{recipient.id}:{recipient.token_version}:{code}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def send_code(
    session: Session, token: str, visit: Visit, secret: bytes, seal: Callable[[str], str]
) -> bool:
    """Mail a fresh code (the previous one stops working). At most ``MAX_SENDS`` per hour:
    a link must not become a way to flood someone's inbox. The code is stored as an HMAC and
    travels to the mail task sealed (``seal``: AES-GCM). False when the allowance is spent."""
    now = utcnow()
    link = find_recipient(session, token)
    agg = load_envelope(session, link, lock=True)
    recipient = own_row(agg, link.recipient_id)
    state, _ = page_state(agg, recipient, False)
    if state != "otp":
        raise IllegalTransition("No code is needed for this link now")
    window = recipient.otp_window_start
    if window is None or now - to_utc(window) > WINDOW:
        recipient.otp_window_start, recipient.otp_sent_count = now, 0
    if recipient.otp_sent_count >= MAX_SENDS:
        return False
    code = f"{secrets.randbelow(10**DIGITS):0{DIGITS}d}"
    recipient.otp_hash = _code_hash(secret, recipient, code)
    recipient.otp_expires_at = now + VALIDITY
    recipient.otp_attempts = 0
    recipient.otp_sent_count += 1
    session.add(recipient)
    audit.record(
        session,
        agg.envelope.id,
        "recipient.code_sent",
        audit.recipient_actor(recipient, visit.ip, visit.user_agent),
        {"to": recipient.email},
        at=now,
    )
    notices.mail(session, agg.envelope, recipient, "otp", code=seal(code))
    return True


def check_code(
    session: Session, token: str, visit: Visit, code: str, secret: bytes
) -> tuple[Recipient, str | None]:
    """Accept the current code once; wrong codes count, and the last allowed one burns it.

    Answers the recipient and an error code (None: accepted) rather than raising, so that a
    wrong attempt is committed, not rolled back with the refusal."""
    now = utcnow()
    link = find_recipient(session, token)
    agg = load_envelope(session, link, lock=True)
    recipient = own_row(agg, link.recipient_id)
    actor = audit.recipient_actor(recipient, visit.ip, visit.user_agent)
    code = "".join(code.split())
    expires = recipient.otp_expires_at
    if recipient.otp_hash is None or expires is None or to_utc(expires) <= now:
        return recipient, "code_expired"
    if not hmac.compare_digest(recipient.otp_hash, _code_hash(secret, recipient, code)):
        recipient.otp_attempts += 1
        burnt = recipient.otp_attempts >= MAX_ATTEMPTS
        if burnt:
            recipient.otp_hash = recipient.otp_expires_at = None
        session.add(recipient)
        audit.record(
            session,
            agg.envelope.id,
            "recipient.code_failed",
            actor,
            {"attempt": recipient.otp_attempts},
            at=now,
        )
        return recipient, "code_burnt" if burnt else "code_wrong"
    recipient.otp_hash = recipient.otp_expires_at = None
    recipient.otp_attempts = 0
    session.add(recipient)
    audit.record(session, agg.envelope.id, "recipient.code_verified", actor, {}, at=now)
    return recipient, None


def otp_cookie_value(secret: bytes, recipient: Recipient, now: datetime) -> str:
    """Proof that this browser entered the code: bound to recipient and token version, and
    short-lived (``SESSION``)."""
    until = int((now + SESSION).timestamp())
    mac = hmac.new(
        secret, f"otp-ok:{recipient.id}:{recipient.token_version}:{until}".encode(), "sha256"
    )
    return f"{until}.{mac.hexdigest()}"


def otp_cookie_ok(secret: bytes, recipient_id: str, version: int, value: str | None) -> bool:
    if not value or "." not in value:
        return False
    until, _, mac = value.partition(".")
    if not until.isdigit() or int(until) < utcnow().timestamp():
        return False
    expected = hmac.new(
        secret, f"otp-ok:{recipient_id}:{version}:{until}".encode(), "sha256"
    ).hexdigest()
    return hmac.compare_digest(mac, expected)
