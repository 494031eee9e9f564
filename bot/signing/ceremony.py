"""The signer ceremony's use cases: open, sign, approve, decline, return, one-time codes.

A signing token is the recipient's credential: it is looked up by hash, bound to one
recipient and to the recipient's token version, and it is useless once the envelope is
finished (the page then only says how it ended). Every use case that changes something loads
the envelope locked, moves it through the pure lifecycle and writes through
``envelopes.service.apply`` — one transaction with its audit entries, outbox events and
notices. Services never commit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from PIL import Image, UnidentifiedImageError
from sqlmodel import Session, select

from bot.accounts.context import AuthContext
from bot.accounts.models import Account
from bot.envelopes import audit, lifecycle
from bot.envelopes.models import Envelope, FieldValue, Recipient, Signature
from bot.envelopes.presenters import EnvelopeAggregate
from bot.envelopes.queries import load_many
from bot.envelopes.service import apply, state_of
from bot.errors import FieldError, IllegalTransition, NotFound, ValidationFailed
from bot.signing import drawing, fields, tokens
from bot.timeutil import to_utc, utcnow

CONSENT_VERSION = "2026-11-28"
"""Bumped whenever the consent sentence changes; recorded with every signature."""
CONSENT_TEXT = (
    "I agree to sign this document electronically. I understand that my electronic "
    "signature has the same legal effect as a handwritten signature, and I consent to "
    "receive and sign the document in electronic form."
)
"""The English consent sentence of ``CONSENT_VERSION`` (the audit trail quotes it; the page
shows its translation)."""

MAX_DRAWN_BYTES = 512 * 1024
MAX_DRAWN_SIDE = 2400


Proof = Callable[[Recipient], bool]
"""Whether this browser proved it holds the recipient's one-time code (a signed cookie)."""


def _invalid(problems: list[tuple[str, str]]) -> ValidationFailed:
    """A form refused field by field; each message is a catalog key (``error.<code>``) that
    the page translates and shows next to its field."""
    return ValidationFailed("The form has errors", [FieldError(f, c) for f, c in problems])


@dataclass(frozen=True)
class Visit:
    """Where a request came from, for the audit log."""

    ip: str | None
    user_agent: str | None


@dataclass
class Opened:
    """What the signer page shows."""

    envelope: Envelope
    recipient: Recipient
    agg: EnvelopeAggregate
    account_name: str
    state: str
    """``act`` (may sign/approve now), ``view`` (a viewer), ``otp`` (a code is needed
    first), ``waiting``, ``signed``, ``approved``, ``declined``, ``voided``, ``expired``,
    ``completed``, ``returned``, ``not_sent``."""
    waiting_for: list[str] = field(default_factory=list)
    """Names of whoever this recipient waits for (sequential order)."""


@dataclass(frozen=True)
class Link:
    """What a signing token points at: ids only. Nothing of the recipient is read before the
    envelope is locked, so every check works on the state after the lock (a row loaded
    earlier would stay stale in the session and let parallel requests slip through)."""

    recipient_id: str
    envelope_id: str


def find_recipient(session: Session, token: str) -> Link:
    if not token or len(token) > 100:
        raise NotFound("This signing link is not valid")
    found = session.exec(
        select(Recipient.id, Recipient.envelope_id).where(
            Recipient.token_hash == tokens.lookup_hash(token)
        )
    ).first()
    if found is None:
        raise NotFound("This signing link is not valid")
    return Link(found[0], found[1])


def load_envelope(session: Session, link: Link, *, lock: bool) -> EnvelopeAggregate:
    envelope = session.get(Envelope, link.envelope_id, with_for_update=True if lock else None)
    if envelope is None:
        raise NotFound("This signing link is not valid")
    return load_many(session, [envelope])[0]


def _context(envelope: Envelope) -> AuthContext:
    return AuthContext("signer", envelope.account_id, envelope.environment, frozenset())


def own_row(agg: EnvelopeAggregate, recipient_id: str) -> Recipient:
    return next(r for r in agg.recipients if r.id == recipient_id)


def _expire_if_due(session: Session, agg: EnvelopeAggregate, now: datetime) -> None:
    """A link expires with its envelope, even before the clock job has passed."""
    envelope = agg.envelope
    status = lifecycle.EnvelopeStatus(envelope.status)
    due = envelope.expires_at is not None and to_utc(envelope.expires_at) <= now
    if due and not status.is_finished and status is not lifecycle.EnvelopeStatus.DRAFT:
        state = state_of(agg)
        by_id = {r.id: r for r in agg.recipients}
        missing = [by_id[rid].email for rid in lifecycle.missing_signers(state)]
        apply(
            session,
            _context(envelope),
            agg,
            lifecycle.expire(state),
            now=now,
            actor=audit.SYSTEM,
            details={"missingSigners": missing},
            missingSigners=missing,
        )


def page_state(agg: EnvelopeAggregate, recipient: Recipient, otp_ok: bool) -> tuple[str, list[str]]:
    status = agg.envelope.status
    finished = {
        "COMPLETED": "completed",
        "DECLINED": "declined",
        "VOIDED": "voided",
        "EXPIRED": "expired",
    }
    if recipient.status == "SIGNED":
        return ("completed" if status == "COMPLETED" else "signed"), []
    if recipient.status == "APPROVED":
        return ("completed" if status == "COMPLETED" else "approved"), []
    if status in finished:
        return finished[status], []
    if status == "RETURNED_TO_SENDER":
        return "returned", []
    if status in ("DRAFT", "SCHEDULED"):
        return "not_sent", []
    if recipient.status == "DECLINED":
        return "declined", []
    if recipient.role == "CARBON_COPY":
        return "not_sent", []
    if recipient.status == "PENDING" and recipient.role != "VIEWER":
        ahead = lifecycle.waiting_for(state_of(agg), recipient.id)
        names = {r.id: r.name for r in agg.recipients}
        return "waiting", [names[rid] for rid in ahead]
    if recipient.status == "PENDING":
        return "not_sent", []
    if recipient.authentication == "EMAIL_OTP" and not otp_ok:
        return "otp", []
    return ("view" if recipient.role == "VIEWER" else "act"), []


def open_page(session: Session, token: str, visit: Visit, proof: Proof) -> Opened:
    """The page's content; the first opening by an invited recipient records
    ``recipient.viewed`` (once, and only once the document is actually shown)."""
    now = utcnow()
    link = find_recipient(session, token)
    agg = load_envelope(session, link, lock=True)
    _expire_if_due(session, agg, now)
    recipient = own_row(agg, link.recipient_id)
    state, waiting = page_state(agg, recipient, proof(recipient))
    if state in ("act", "view"):
        _viewed(session, agg, recipient, now, visit)
    account = session.get(Account, agg.envelope.account_id)
    return Opened(agg.envelope, recipient, agg, account.name if account else "", state, waiting)


def peek(session: Session, link: Link, proof: Proof) -> str:
    """The page's state without changing anything (for page images and downloads)."""
    agg = load_envelope(session, link, lock=False)
    expires = agg.envelope.expires_at
    if expires is not None and to_utc(expires) <= utcnow():
        return "expired"
    mine = own_row(agg, link.recipient_id)
    return page_state(agg, mine, proof(mine))[0]


@dataclass(frozen=True)
class SignForm:
    """What the signer submitted."""

    name: str
    mode: str
    """``typed`` or ``drawn``."""
    typed: str
    drawn: str
    """A ``data:image/png;base64,…`` URL from the canvas (JavaScript only)."""
    consent: bool
    drawn_png: bytes | None = None
    """``drawn`` decoded and re-encoded by :func:`clean_drawing` before the transaction (image
    work must not run while the envelope is locked); None when absent or unreadable."""
    values: dict[str, str] = field(default_factory=dict)
    """Field inputs by their form name (``field_<id>``)."""
    initials: str = ""


def check_sign_form(
    form: SignForm, errors: list[tuple[str, str]] | None = None
) -> tuple[str, str | None, bytes | None]:
    """(name, typed signature, drawn PNG) or ValidationFailed naming each bad field
    (``errors`` already found elsewhere in the form are reported with these)."""
    errors = list(errors or [])
    # what would be drawn: a name or signature of only unprintable characters (U+F8FF…)
    # would leave nothing to stamp, so it counts as empty
    name = drawing.clean(form.name)
    if not name:
        errors.append(("name", "required"))
    elif len(name) > 200:
        errors.append(("name", "too_long"))
    typed: str | None = None
    drawn: bytes | None = None
    if form.mode == "drawn":
        # never fall back to the typed name: the signer chose to draw and saw no typed one
        drawn = form.drawn_png
        if drawn is None:
            errors.append(("signature", "drawing_invalid" if form.drawn else "required"))
    else:
        typed = drawing.clean(form.typed) or name
        if not typed:
            errors.append(("signature", "required"))
        elif len(typed) > 200:
            errors.append(("signature", "too_long"))
    if not form.consent:
        errors.append(("consent", "required"))
    if errors:
        raise _invalid(errors)
    return name, typed, drawn


def clean_drawing(data_url: str) -> bytes:
    """Decode the canvas' PNG and re-encode it ourselves: cropped to the ink, no metadata, and
    nothing of the browser's bytes kept. Blank or oversized drawings are refused."""
    prefix = "data:image/png;base64,"
    if not data_url.startswith(prefix) or len(data_url) > MAX_DRAWN_BYTES * 4 // 3 + 64:
        raise ValueError("not a PNG data URL")
    try:
        raw = base64.b64decode(data_url[len(prefix) :], validate=True)
        with Image.open(io.BytesIO(raw)) as image:
            if image.format != "PNG" or max(image.size) > MAX_DRAWN_SIDE:
                raise ValueError("not a PNG of a sensible size")
            rgba = image.convert("RGBA")
    except (binascii.Error, UnidentifiedImageError, OSError) as exc:
        raise ValueError("unreadable PNG") from exc
    box = rgba.getchannel("A").point(lambda a: 255 if a > 16 else 0).getbbox()
    if box is None:
        raise ValueError("blank drawing")
    out = io.BytesIO()
    rgba.crop(box).save(out, "PNG", optimize=True)
    return out.getvalue()


def _act(
    session: Session, token: str, visit: Visit, proof: Proof
) -> tuple[EnvelopeAggregate, Recipient, datetime]:
    """Load for an action, refusing (409) unless it is this recipient's turn."""
    now = utcnow()
    link = find_recipient(session, token)
    agg = load_envelope(session, link, lock=True)
    _expire_if_due(session, agg, now)
    recipient = own_row(agg, link.recipient_id)
    if recipient.authentication == "EMAIL_OTP" and not proof(recipient):
        raise IllegalTransition("Enter the code we emailed you before acting on this document")
    _viewed(session, agg, recipient, now, visit)
    return agg, recipient, now


def _viewed(
    session: Session, agg: EnvelopeAggregate, recipient: Recipient, now: datetime, visit: Visit
) -> None:
    """Record ``recipient.viewed`` the first time the document is shown — or acted on, since
    acting without the page (a form posted directly) implies having it."""
    if recipient.status != "SENT" or agg.envelope.status not in (
        "SENT",
        "DELIVERED",
        "PARTIALLY_SIGNED",
    ):
        return
    transition = lifecycle.view(state_of(agg), recipient.id)
    recipient.viewed_at = now
    apply(
        session,
        _context(agg.envelope),
        agg,
        transition,
        now=now,
        subject_id=recipient.id,
        actor=audit.recipient_actor(recipient, visit.ip, visit.user_agent),
    )


def sign(session: Session, token: str, visit: Visit, form: SignForm, proof: Proof) -> Opened:
    agg, recipient, now = _act(session, token, visit, proof)
    own = fields.mine(agg.fields, recipient.id)
    wants_initials = fields.asks_initials(own, agg.envelope.initials_on_every_page)
    values, initials, problems = fields.check(
        own, form.values, initials=form.initials, wants_initials=wants_initials
    )
    name, typed, drawn = check_sign_form(form, problems)
    transition = lifecycle.sign(state_of(agg), recipient.id)  # 409 unless it is their turn
    recipient.signed_at = now
    for field_row in own:
        value = values.get(field_row.id)
        if field_row.field_type == "DATE_SIGNED":
            value = now.date().isoformat()
        if value is not None:
            session.add(
                FieldValue(
                    field_id=field_row.id,
                    envelope_id=agg.envelope.id,
                    recipient_id=recipient.id,
                    value=value,
                    filled_at=now,
                )
            )
    session.add(
        Signature(
            recipient_id=recipient.id,
            envelope_id=agg.envelope.id,
            kind="drawn" if drawn else "typed",
            name=name,
            typed=typed,
            initials=initials,
            image_png=drawn,
            consent_version=CONSENT_VERSION,
            ip=visit.ip,
            user_agent=(visit.user_agent or "")[:512] or None,
            signed_at=now,
        )
    )
    details = {
        "name": name,
        "signature": "drawn" if drawn else "typed",
        "signatureSha256": hashlib.sha256(drawn or (typed or "").encode()).hexdigest(),
        "consentVersion": CONSENT_VERSION,
        "authentication": recipient.authentication or "EMAIL_LINK",
        "fields": {f.id: values.get(f.id, "") for f in own if f.field_type in fields.FILLED},
        "initials": initials,
    }
    _apply_as(session, agg, recipient, transition, now, visit, details)
    return _reopened(session, agg, recipient)


def approve(session: Session, token: str, visit: Visit, consent: bool, proof: Proof) -> Opened:
    agg, recipient, now = _act(session, token, visit, proof)
    if not consent:
        raise _invalid([("consent", "required")])
    transition = lifecycle.approve(state_of(agg), recipient.id)
    recipient.signed_at = now
    session.add(
        Signature(
            recipient_id=recipient.id,
            envelope_id=agg.envelope.id,
            kind="approval",
            name=recipient.name,
            consent_version=CONSENT_VERSION,
            ip=visit.ip,
            user_agent=(visit.user_agent or "")[:512] or None,
            signed_at=now,
        )
    )
    details = {"consentVersion": CONSENT_VERSION}
    _apply_as(session, agg, recipient, transition, now, visit, details)
    return _reopened(session, agg, recipient)


def decline(session: Session, token: str, visit: Visit, reason: str, proof: Proof) -> Opened:
    agg, recipient, now = _act(session, token, visit, proof)
    reason = reason.strip()
    if not reason:
        raise _invalid([("reason", "required")])
    transition = lifecycle.decline(state_of(agg), recipient.id)
    recipient.declined_at = now
    recipient.decline_reason = reason[:1000]
    _apply_as(
        session,
        agg,
        recipient,
        transition,
        now,
        visit,
        {"reason": reason[:1000]},
        declineReason=reason[:1000],
        decline_reason=reason[:1000],
        declinedBy=recipient.email,
    )
    return _reopened(session, agg, recipient)


def return_to_sender(
    session: Session, token: str, visit: Visit, changes: str, proof: Proof
) -> Opened:
    agg, recipient, now = _act(session, token, visit, proof)
    changes = changes.strip()
    if not changes:
        raise _invalid([("changes", "required")])
    transition = lifecycle.return_to_sender(state_of(agg), recipient.id)
    _apply_as(
        session,
        agg,
        recipient,
        transition,
        now,
        visit,
        {"requestedChanges": changes[:1000]},
        requestedChanges=changes[:1000],
        returnedBy=recipient.email,
    )
    return _reopened(session, agg, recipient)


def _apply_as(
    session: Session,
    agg: EnvelopeAggregate,
    recipient: Recipient,
    transition: lifecycle.Transition,
    now: datetime,
    visit: Visit,
    details: dict[str, object],
    **extra: object,
) -> None:
    apply(
        session,
        _context(agg.envelope),
        agg,
        transition,
        now=now,
        subject_id=recipient.id,
        actor=audit.recipient_actor(recipient, visit.ip, visit.user_agent),
        details=details,
        **extra,
    )
    session.flush()


def _reopened(session: Session, agg: EnvelopeAggregate, recipient: Recipient) -> Opened:
    account = session.get(Account, agg.envelope.account_id)
    state, waiting = page_state(agg, recipient, True)
    return Opened(agg.envelope, recipient, agg, account.name if account else "", state, waiting)


def recipient_for(session: Session, token: str) -> Link:
    """The token's recipient and envelope ids (404 when there is none)."""
    return find_recipient(session, token)
