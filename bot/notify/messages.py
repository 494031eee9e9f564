"""What is sent: the message model and its rendering as an email or an SMS.

The outbox job builds one ``MailContext`` per recipient and message (it derives the signing
link at that moment, so no link is ever stored) and calls ``render_email`` / ``render_sms``;
a transport then carries the result. Rendering is pure: no I/O besides reading templates.

Every kind has one small template per format under ``templates/`` (``KIND.html.j2``,
``KIND.txt.j2``) on a shared layout, and its words in ``locales/*.json``. There is no
``RETURNED`` kind: an approver returning the envelope tells the *sender*, and the service
holds no sender address — the API webhook ``envelope.returned_to_sender`` and the Slack bot
carry that news instead.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from enum import StrEnum

from bot.notify.errors import DeliveryError
from bot.notify.rendering import (
    format_date,
    format_datetime,
    multiline,
    one_line,
    render_pair,
    translator,
    truncate,
)


class Kind(StrEnum):
    """What the message is about; the value names its templates and catalog keys."""

    INVITATION = "invitation"
    REMINDER = "reminder"
    COMPLETED = "completed"
    DECLINED = "declined"
    VOIDED = "voided"
    EXPIRED = "expired"
    OTP = "otp"
    """A one-time code the signer types on the signing page."""
    VIEW = "view"
    """A VIEWER's link to look at the envelope; nothing to sign."""


#: Kinds whose link acts as the recipient: they carry the "do not forward" warning.
ACTIONABLE = frozenset({Kind.INVITATION, Kind.REMINDER, Kind.VIEW})

#: What a role does with the link, as used in catalog keys (``button.sign``...).
VERBS = {"SIGNER": "sign", "APPROVER": "approve", "VIEWER": "view", "CARBON_COPY": "view"}


@dataclass(frozen=True)
class Attachment:
    """A file attached to the email (the sealed PDF and audit trail on completion)."""

    filename: str
    content: bytes
    mime_type: str = "application/pdf"


@dataclass(frozen=True)
class MailContext:
    """Everything one message to one recipient says. Fields a kind does not use are ignored."""

    kind: Kind
    locale: str
    """BCP-47 tag of the recipient (the envelope's locale); regional tags fall back."""
    account_name: str
    """The sender organisation, shown as who sent it ("Acme via signbot")."""
    subject: str
    """The envelope's subject, user text; flattened to one line wherever it is shown."""
    recipient_email: str
    recipient_name: str = ""
    message: str = ""
    """The sender's message, plain text with line breaks; may be empty."""
    role: str = "SIGNER"
    """SIGNER, APPROVER, VIEWER or CARBON_COPY: decides "sign" / "approve" / "view" wording."""
    action_url: str | None = None
    """The recipient's link (sign or view page). Required for INVITATION, REMINDER and VIEW;
    it grants access, so it goes in the message and never in a log."""
    code: str | None = None
    """The one-time code, for OTP."""
    code_minutes: int = 10
    """How long the OTP code stays valid."""
    expires_at: datetime | None = None
    """When the envelope expires (naive means UTC); shown in the footer, and in EXPIRED."""
    decline_reason: str = ""
    declined_by: str = ""
    """Name of the recipient who declined, for DECLINED."""
    void_reason: str = ""
    missing: tuple[str, ...] = ()
    """Names of the recipients who had not acted, for EXPIRED."""
    reminder_number: int = 1
    """1 for the first reminder; from 2 on the body says which one it is."""
    attachments: tuple[Attachment, ...] = ()
    """Attached to COMPLETED (other kinds attach nothing, whatever is given)."""
    test_mode: bool = False
    """Sandbox envelope: a visible TEST banner and a ``[TEST]`` subject prefix, so a tester
    never mistakes it for a binding request."""
    envelope_id: str | None = None
    """Shown as a reference for support, and used to thread an envelope's emails."""


def verb(role: str) -> str:
    """``sign`` / ``approve`` / ``view`` for a role; unknown roles are a caller bug."""
    try:
        return VERBS[str(role).upper()]
    except KeyError:
        raise ValueError(f"unknown recipient role {role!r}") from None


def _check(ctx: MailContext) -> None:
    """A message without its link or code is worse than none: refuse to render it."""
    if ctx.kind in ACTIONABLE and not ctx.action_url:
        raise ValueError(f"a {ctx.kind} message needs an action_url")
    if ctx.kind is Kind.OTP and not ctx.code:
        raise ValueError("an otp message needs a code")


def subject_line(ctx: MailContext) -> str:
    """The localized Subject header, e.g. ``Please sign: NDA`` / ``À signer : NDA``."""
    t = translator(ctx.locale)
    subject = one_line(ctx.subject, 150)
    if ctx.kind is Kind.INVITATION:
        line = t(f"subject.invitation.{verb(ctx.role)}", subject=subject)
    elif ctx.kind is Kind.OTP:
        line = t("subject.otp", code=one_line(ctx.code, 20))
    else:
        line = t(f"subject.{ctx.kind}", subject=subject)
    return f"[TEST] {line}" if ctx.test_mode else line


def _variables(ctx: MailContext) -> dict[str, object]:
    t = translator(ctx.locale)
    name = one_line(ctx.recipient_name, 100)
    expires = format_datetime(ctx.expires_at, t) if ctx.expires_at else None
    return {
        "kind": str(ctx.kind),
        "lang": t.lang,
        "verb": verb(ctx.role),
        "title": subject_line(ctx),
        "account": one_line(ctx.account_name, 100) or "signbot",
        "subject": one_line(ctx.subject, 200),
        "name": name,
        "message": multiline(ctx.message),
        "url": ctx.action_url,
        "code": one_line(ctx.code, 20),
        "minutes": ctx.code_minutes,
        "expires": expires if ctx.kind in ACTIONABLE else None,
        "expired_on": format_date(ctx.expires_at, t) if ctx.expires_at else None,
        "decline_reason": multiline(ctx.decline_reason, 2000),
        "declined_by": one_line(ctx.declined_by, 100),
        "void_reason": multiline(ctx.void_reason, 2000),
        "missing": [one_line(m, 100) for m in ctx.missing if one_line(m, 100)],
        "reminder_number": ctx.reminder_number,
        "attached": ctx.kind is Kind.COMPLETED and bool(ctx.attachments),
        "warn_forward": ctx.kind in ACTIONABLE,
        "test_mode": ctx.test_mode,
        "envelope_id": one_line(ctx.envelope_id, 64) or None,
    }


def render_bodies(ctx: MailContext) -> tuple[str, str]:
    """``(html, text)`` bodies of the email, for previews and tests."""
    _check(ctx)
    return render_pair(str(ctx.kind), translator(ctx.locale), _variables(ctx))


def _recipient(ctx: MailContext) -> Address:
    """The To address; an address that cannot be one is a permanent failure, not a bug."""
    raw = (ctx.recipient_email or "").strip()
    try:
        if any(c in raw for c in '\r\n<>,;"') or raw.count("@") != 1:
            raise ValueError("not a single plain address")
        local, domain = raw.rsplit("@", 1)
        # IDNA for the domain, so servers without SMTPUTF8 take it; non-ASCII local parts
        # have no such fallback and are refused by the address parser below.
        domain = domain.encode("idna").decode("ascii").lower()
        return Address(
            display_name=one_line(ctx.recipient_name, 100), addr_spec=f"{local}@{domain}"
        )
    except Exception as exc:  # the email package raises several unrelated types
        raise DeliveryError(
            f"invalid recipient address {raw[:100]!r}: {exc}", permanent=True
        ) from None


def render_email(
    ctx: MailContext,
    *,
    from_address: str,
    message_id_domain: str | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    """The complete email: multipart/alternative (text, then HTML), wrapped in
    multipart/mixed with the attachments for COMPLETED.

    Raises ``ValueError`` for a context that cannot make a useful message (no link, no code,
    unknown role) and a permanent ``DeliveryError`` for an unusable recipient address.
    Names and subjects are flattened to one line and handed to the email package as
    structured values, so quotes, ``<>`` or CR/LF in them can never form a header.
    """
    html, text = render_bodies(ctx)
    domain = message_id_domain or from_address.rpartition("@")[2] or "signbot.invalid"
    msg = EmailMessage()
    account = one_line(ctx.account_name, 100) or "signbot"
    msg["From"] = Address(display_name=f"{account} via signbot", addr_spec=from_address)
    msg["To"] = _recipient(ctx)
    msg["Subject"] = subject_line(ctx)
    msg["Date"] = email.utils.format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = email.utils.make_msgid(idstring=str(ctx.kind), domain=domain)
    envelope_id = one_line(ctx.envelope_id, 64).replace(" ", "")
    if envelope_id:
        # A shared reference lets mail clients thread an envelope's invitation, reminders
        # and outcome together.
        msg["References"] = f"<{envelope_id}@{domain}>"
        msg["X-Signbot-Envelope"] = envelope_id
    msg["X-Signbot-Kind"] = str(ctx.kind)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"  # no out-of-office replies to a robot
    if ctx.test_mode:
        msg["X-Signbot-Test"] = "1"
    msg.set_content(text, subtype="plain", charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    if ctx.kind is Kind.COMPLETED:
        for attachment in ctx.attachments:
            maintype, _, subtype = attachment.mime_type.partition("/")
            filename = one_line(attachment.filename, 150).replace("/", "_").replace("\\", "_")
            msg.add_attachment(
                attachment.content,
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=filename or "document.pdf",
            )
    return msg


#: Longest SMS we produce: two concatenated GSM-7 segments are 306 characters.
SMS_LIMIT = 300


def render_sms(ctx: MailContext) -> str:
    """One short localized text with the link or the code, at most ``SMS_LIMIT`` characters.

    The catalog's SMS strings use straight quotes and ``...`` so that Western European texts
    stay in the GSM-7 alphabet (160 characters a segment instead of 70). User text is cut
    first — the subject to 60 characters, then shorter if the link is long — never the link.
    """
    _check(ctx)
    t = translator(ctx.locale)
    if ctx.kind is Kind.INVITATION:
        key = f"sms.invitation.{verb(ctx.role)}"
    elif ctx.kind is Kind.REMINDER:
        key = "sms.reminder"
    else:
        key = f"sms.{ctx.kind}"
    prefix = "[TEST] " if ctx.test_mode else ""
    account = one_line(ctx.account_name, 40) or "signbot"
    values = {
        "account": truncate(account, 30, "..."),
        "url": ctx.action_url or "",
        "code": one_line(ctx.code, 20),
        "minutes": ctx.code_minutes,
    }
    # COMPLETED may carry a download link; its catalog string has no place for one.
    suffix = f" {ctx.action_url}" if ctx.kind is Kind.COMPLETED and ctx.action_url else ""
    subject = one_line(ctx.subject, 1000)
    for limit in (60, 40, 20, 0):
        body = prefix + t(key, subject=truncate(subject, limit, "..."), **values) + suffix
        if len(body) <= SMS_LIMIT:
            break
    return body
