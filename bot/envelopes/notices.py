"""Who is told what when an envelope moves: email and SMS tasks, queued in the same transaction.

This decides *whom* to tell; ``bot.signing.mailer`` renders and sends each message when the
task runs (it derives the signing link then, so no link is ever stored). Kinds are the names
of ``bot.notify.messages.Kind`` values, lower-case.

- invited signers and approvers: ``invitation`` (email, and SMS when they have a phone);
  viewers: ``view``;
- declined, voided, expired: every recipient who had been reached (not PENDING) or is a
  carbon copy, except the one who declined;
- completed: everyone, with the sealed PDF and the audit trail — queued by the finalize job
  once they exist, not here.
"""

from __future__ import annotations

from sqlmodel import Session

from bot.envelopes.models import Envelope, Recipient
from bot.jobs.tasks import enqueue

_FINISHING = {
    "envelope.declined": "declined",
    "envelope.voided": "voided",
    "envelope.expired": "expired",
}


def mail(
    session: Session, envelope: Envelope, recipient: Recipient, kind: str, **extra: object
) -> None:
    """Queue one email to ``recipient`` and show it as QUEUED in the API."""
    enqueue(
        session,
        "mail",
        {"kind": kind, "recipientId": recipient.id, **extra},
        envelope_id=envelope.id,
    )
    recipient.email_status, recipient.email_error = "QUEUED", None
    session.add(recipient)


def sms(session: Session, envelope: Envelope, recipient: Recipient, kind: str) -> None:
    if not recipient.phone:
        return
    enqueue(session, "sms", {"kind": kind, "recipientId": recipient.id}, envelope_id=envelope.id)
    recipient.sms_status, recipient.sms_error = "QUEUED", None
    session.add(recipient)


def invite(session: Session, envelope: Envelope, recipients: list[Recipient]) -> None:
    """The link to act (or to view) for recipients routing has just reached."""
    for recipient in recipients:
        kind = "view" if recipient.role == "VIEWER" else "invitation"
        mail(session, envelope, recipient, kind)
        sms(session, envelope, recipient, kind)


def on_events(
    session: Session,
    envelope: Envelope,
    recipients: list[Recipient],
    events: tuple[str, ...],
    *,
    actor_id: str | None,
) -> None:
    """Notices for the finishing events of a transition (declined, voided, expired)."""
    for event in events:
        kind = _FINISHING.get(event)
        if kind is None:
            continue
        for recipient in recipients:
            reached = recipient.sent_at is not None or recipient.role == "CARBON_COPY"
            if reached and recipient.id != actor_id:
                mail(session, envelope, recipient, kind)
