"""The ``mail`` and ``sms`` tasks: render one message for one recipient and hand it over.

The signing link is derived when the message is rendered, never stored. Sandbox
(``sk_test_``) envelopes never leave the machine, whatever is configured: their mail is written
under ``{DATA_DIR}/mail`` and their texts under ``{DATA_DIR}/sms``, as Certyneo's sandbox sends
nothing. Each outcome shows on the recipient in the API (``emailStatus``: QUEUED, SENT,
CAPTURED, RETRYING, FAILED with ``emailError``) and, once handed over, in the audit log; logs
say where a message went, never its link.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage

from sqlmodel import Session, select

from bot.accounts.models import Account
from bot.config import Settings
from bot.db import Database
from bot.documents.storage import Storage
from bot.envelopes import audit
from bot.envelopes.models import Envelope, Recipient
from bot.jobs.models import Task
from bot.jobs.tasks import TaskFailed
from bot.notify.errors import DeliveryError
from bot.notify.mail import FileTransport, mail_transport
from bot.notify.messages import Attachment, Kind, MailContext, render_email, render_sms
from bot.notify.sms import sms_provider
from bot.secretbox import SecretBox
from bot.signing import otp, tokens
from bot.timeutil import to_utc, utcnow

log = logging.getLogger("signbot.notify")


@dataclass
class Loaded:
    envelope: Envelope
    recipient: Recipient
    account_name: str
    decliner: Recipient | None
    missing: tuple[str, ...]


def _load(session: Session, envelope_id: str | None, recipient_id: str) -> Loaded | None:
    recipient = session.get(Recipient, recipient_id)
    envelope = session.get(Envelope, envelope_id) if envelope_id else None
    if recipient is None or envelope is None:
        return None
    account = session.get(Account, envelope.account_id)
    others = list(session.exec(select(Recipient).where(Recipient.envelope_id == envelope.id)))
    decliner = next((r for r in others if r.status == "DECLINED"), None)
    missing = tuple(
        r.name
        for r in others
        if r.role in ("SIGNER", "APPROVER") and r.status not in ("SIGNED", "APPROVED")
    )
    session.expunge_all()  # plain objects from here on: the caller reads them after commit
    return Loaded(envelope, recipient, account.name if account else "", decliner, missing)


_ACTIVE = ("SENT", "DELIVERED", "PARTIALLY_SIGNED")
_LINKED = frozenset({Kind.INVITATION, Kind.REMINDER, Kind.VIEW, Kind.OTP})
"""Kinds that ask the recipient to act now: pointless, even misleading, once that moved on."""


def stale(task: Task, loaded: Loaded, kind: Kind) -> bool:
    """A link-carrying message whose moment has passed while it waited (the envelope was
    voided, finished or returned, the recipient acted, the code expired): dropped, not sent."""
    if kind not in _LINKED:
        return False
    if loaded.envelope.status not in _ACTIVE or loaded.recipient.status not in ("SENT", "VIEWED"):
        return True
    return kind is Kind.OTP and utcnow() - to_utc(task.created_at) > otp.VALIDITY


class Mailer:
    """Handlers for the ``mail`` and ``sms`` task kinds."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        storage: Storage,
        secret: bytes,
        box: SecretBox,
    ) -> None:
        self.settings = settings
        self.db = db
        self.storage = storage
        self.secret = secret
        self.box = box
        mail_dir = (settings.data_dir / "mail").resolve()
        sms_dir = (settings.data_dir / "sms").resolve()
        timeout = settings.smtp_timeout_seconds
        self.live_mail = mail_transport(settings.smtp_url, mail_dir, timeout=timeout)
        self.sandbox_mail = FileTransport(mail_dir)
        self.live_sms = sms_provider(settings.sms_url, settings.sms_from, sms_dir, timeout=timeout)
        self.sandbox_sms = sms_provider(None, settings.sms_from, sms_dir, timeout=timeout)

    def _context(
        self, task: Task, loaded: Loaded, attachments: tuple[Attachment, ...]
    ) -> MailContext:
        envelope, recipient = loaded.envelope, loaded.recipient
        kind = Kind(task.payload["kind"])
        token = tokens.derive(self.secret, recipient.id, recipient.token_version)
        action_url = (
            tokens.sign_url(self.settings.effective_public_url, token)
            if kind in (Kind.INVITATION, Kind.REMINDER, Kind.VIEW)
            else None
        )
        code = None
        if kind is Kind.OTP:
            code = self.box.open(str(task.payload["code"]))
        return MailContext(
            kind=kind,
            locale=recipient.locale or envelope.locale,
            account_name=loaded.account_name,
            subject=envelope.subject,
            recipient_email=recipient.email,
            recipient_name=recipient.name,
            message=envelope.message if kind in (Kind.INVITATION, Kind.VIEW) else "",
            role=recipient.role,
            action_url=action_url,
            code=code,
            code_minutes=int(otp.VALIDITY.total_seconds() // 60),
            expires_at=envelope.expires_at,
            decline_reason=(loaded.decliner.decline_reason or "") if loaded.decliner else "",
            declined_by=loaded.decliner.name if loaded.decliner else "",
            void_reason=envelope.void_reason or "",
            missing=loaded.missing if kind is Kind.EXPIRED else (),
            reminder_number=int(task.payload.get("number", 1)),
            attachments=attachments,
            test_mode=envelope.environment == "test",
            envelope_id=envelope.id,
        )

    async def _attachments(self, envelope: Envelope) -> tuple[Attachment, ...]:
        """The completion email carries the sealed PDF and the audit trail."""
        out = []
        for key, name in (
            (envelope.signed_document_key, f"{envelope.id}-signed.pdf"),
            (envelope.audit_trail_key, f"{envelope.id}-audit-trail.pdf"),
        ):
            if key:
                out.append(Attachment(name, await self.storage.read_bytes(key)))
        return tuple(out)

    async def mail(self, task: Task) -> None:
        recipient_id = str(task.payload["recipientId"])
        loaded = await self.db.run(lambda s: _load(s, task.envelope_id, recipient_id))
        if loaded is None:
            return  # the draft was deleted since; nothing to say
        kind = Kind(task.payload["kind"])
        if stale(task, loaded, kind):
            log.info("%s email for %s dropped: no longer relevant", kind.value, recipient_id)
            await self.db.run(lambda s: _status(s, recipient_id, "email", "SKIPPED", None))
            return
        attachments = await self._attachments(loaded.envelope) if kind is Kind.COMPLETED else ()
        sandbox = loaded.envelope.environment == "test"
        transport = self.sandbox_mail if sandbox else self.live_mail
        try:
            # inside: an address that cannot be written is a permanent DeliveryError too
            message = render_email(
                self._context(task, loaded, attachments), from_address=self.settings.smtp_from
            )
            where = await transport.send(message)
        except DeliveryError as exc:
            state, error = ("FAILED" if exc.permanent else "RETRYING"), exc.message
            await self.db.run(lambda s: _status(s, recipient_id, "email", state, error))
            if exc.permanent:
                raise TaskFailed(exc.message) from exc
            raise
        captured = isinstance(transport, FileTransport)
        if captured:
            log.info("%s email for %s written to %s", kind.value, recipient_id, where)
        else:
            log.info("%s email for %s sent (%s)", kind.value, recipient_id, where)
        await self._record(
            lambda s: _delivered(
                s, loaded, "email", "CAPTURED" if captured else "SENT", kind.value, where, message
            )
        )

    async def _record(self, work: Callable[[Session], None]) -> None:
        """Record a message that has left. A failure here must not fail the task: a retry
        would send the message a second time."""
        try:
            await self.db.run(work)
        except Exception:
            log.exception("a message was sent but its delivery could not be recorded")

    async def give_up_mail(self, task: Task, error: str) -> None:
        recipient_id = str(task.payload["recipientId"])
        await self.db.run(lambda s: _status(s, recipient_id, "email", "FAILED", error))

    async def sms(self, task: Task) -> None:
        recipient_id = str(task.payload["recipientId"])
        loaded = await self.db.run(lambda s: _load(s, task.envelope_id, recipient_id))
        if loaded is None or not loaded.recipient.phone:
            return
        if stale(task, loaded, Kind(task.payload["kind"])):
            await self.db.run(lambda s: _status(s, recipient_id, "sms", "SKIPPED", None))
            return
        text = render_sms(self._context(task, loaded, ()))
        sandbox = loaded.envelope.environment == "test"
        provider = self.sandbox_sms if sandbox else self.live_sms
        try:
            where = await provider.send(loaded.recipient.phone, text)
        except DeliveryError as exc:
            state, error = ("FAILED" if exc.permanent else "RETRYING"), exc.message
            await self.db.run(lambda s: _status(s, recipient_id, "sms", state, error))
            if exc.permanent:
                raise TaskFailed(exc.message) from exc
            raise
        captured = sandbox or not self.settings.sms_url
        log.info("%s SMS for %s handed over (%s)", task.payload["kind"], recipient_id, where)
        await self._record(
            lambda s: _delivered(
                s,
                loaded,
                "sms",
                "CAPTURED" if captured else "SENT",
                str(task.payload["kind"]),
                where,
                None,
            )
        )

    async def give_up_sms(self, task: Task, error: str) -> None:
        recipient_id = str(task.payload["recipientId"])
        await self.db.run(lambda s: _status(s, recipient_id, "sms", "FAILED", error))


def _status(
    session: Session, recipient_id: str, channel: str, state: str, error: str | None
) -> None:
    recipient = session.get(Recipient, recipient_id)
    if recipient is None:
        return
    setattr(recipient, f"{channel}_status", state)
    setattr(recipient, f"{channel}_error", (error or None) and error[:500])
    session.add(recipient)


def _delivered(
    session: Session,
    loaded: Loaded,
    channel: str,
    state: str,
    kind: str,
    where: str,
    message: EmailMessage | None,
) -> None:
    """Status on the recipient and an audit entry: who was told what, through what.

    The envelope row is locked first, as every change to an envelope does (signing locks it,
    then updates its recipients): the other order deadlocks with a signature in flight."""
    envelope = session.get(Envelope, loaded.envelope.id, with_for_update=True)
    if envelope is None:
        return
    _status(session, loaded.recipient.id, channel, state, None)
    details: dict[str, object] = {
        "kind": kind,
        "to": loaded.recipient.email if channel == "email" else loaded.recipient.phone,
        "via": "local folder" if state == "CAPTURED" else where.split(" ")[0],
    }
    if message is not None:
        details["messageId"] = message["Message-ID"]
    audit.record(session, envelope.id, f"{channel}.sent", audit.SYSTEM, details)
