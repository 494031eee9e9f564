"""How an email leaves: over SMTP (aiosmtplib), or into a folder of ``.eml`` files.

Both transports take a finished ``EmailMessage`` (see ``messages.render_email``) and return a
short description of where it went, fit for the audit trail and the delivery log; both raise
``DeliveryError`` with ``permanent`` set as ``errors.DeliveryError`` explains. Neither logs:
the caller logs the description, which never contains the message (nor its signing link).

SMTP error classification, in one table:

    refusal / failure                                       permanent?
    RCPT 5xx (unknown user, bad mailbox, policy)            yes
    DATA 5xx (message rejected: size, content)              yes
    recipient needs SMTPUTF8 the server lacks               yes
    RCPT / DATA 4xx (greylisting, mailbox full, throttle)   no
    AUTH refused, MAIL FROM refused, STARTTLS missing       no  (our configuration)
    connection refused, DNS, TLS handshake, timeouts        no
"""

from __future__ import annotations

import asyncio
import re
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

import aiosmtplib

from bot.notify.errors import DeliveryError
from bot.notify.files import timestamp, write_new


class MailTransport(Protocol):
    """Hands one rendered email over; returns where it went, raises ``DeliveryError``."""

    async def send(self, msg: EmailMessage) -> str: ...


_STARTTLS = {
    "auto": None,
    "opportunistic": None,
    "require": True,
    "required": True,
    "on": True,
    "true": True,
    "off": False,
    "false": False,
    "no": False,
}
_FALSE = {"false", "0", "no", "off"}


class SmtpTransport:
    """Sends through an SMTP relay described by one URL.

    - ``smtp://user:pass@host:port`` — port 25 by default; STARTTLS when the server offers it
      (``?starttls=require`` refuses a server that does not, ``?starttls=off`` never tries);
    - ``smtps://user:pass@host:port`` — implicit TLS, port 465 by default;
    - ``?verify=false`` accepts any certificate, for a development relay with a self-signed
      one. User and password are percent-decoded (``%40`` for an ``@`` in a user name).

    One connection per message: the outbox sends at a human pace, and a fresh connection
    cannot be half-dead. ``repr`` never shows the password.
    """

    def __init__(self, url: str, *, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"SMTP URL must start with smtp:// or smtps://, not {parts.scheme!r}")
        if not parts.hostname:
            raise ValueError("SMTP URL has no host")
        self.host = parts.hostname
        self.implicit_tls = parts.scheme == "smtps"
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        self.starttls: bool | None = None
        self.verify = True
        for key, value in parse_qsl(parts.query):
            if key == "starttls":
                if value.lower() not in _STARTTLS:
                    raise ValueError(f"starttls must be require, off or auto, not {value!r}")
                self.starttls = _STARTTLS[value.lower()]
            elif key == "verify":
                self.verify = value.lower() not in _FALSE
            else:
                raise ValueError(f"unknown SMTP URL option {key!r} (starttls, verify)")
        if self.implicit_tls and self.starttls:
            raise ValueError("smtps:// is TLS from the start; starttls=require does not apply")

    def __repr__(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        scheme = "smtps" if self.implicit_tls else "smtp"
        return f"SmtpTransport('{scheme}://{user}{self.host}:{self.port}')"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def _client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self._password,
            use_tls=self.implicit_tls,
            start_tls=False if self.implicit_tls else self.starttls,
            validate_certs=self.verify,
            timeout=self.timeout,
        )

    async def send(self, msg: EmailMessage) -> str:
        recipients = [addr for _, addr in getaddresses(msg.get_all("To", []))]
        try:
            async with self._client() as client:
                refused, reply = await client.send_message(msg)
        except aiosmtplib.SMTPException as exc:
            raise self._classify(exc) from None
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            raise DeliveryError(
                f"smtp {self.where}: {type(exc).__name__}: {exc}", permanent=False
            ) from None
        if refused and len(refused) == len(recipients):
            # Cannot normally happen (aiosmtplib raises when nobody is accepted); be safe.
            raise DeliveryError(f"smtp {self.where}: every recipient refused", permanent=True)
        return f"smtp {self.where} 250 {_oneline(reply)}"

    def _classify(self, exc: aiosmtplib.SMTPException) -> DeliveryError:
        where = f"smtp {self.where}"
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"{r.code} {_oneline(r.message)}" for r in exc.recipients)
            return DeliveryError(
                f"{where}: recipient refused: {detail}", permanent=all(c >= 500 for c in codes)
            )
        if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
            return DeliveryError(
                f"{where}: recipient refused: {exc.code} {_oneline(exc.message)}",
                permanent=exc.code >= 500,
            )
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            return DeliveryError(
                f"{where}: authentication failed ({exc.code} {_oneline(exc.message)}); "
                "check the user and password in SIGNBOT_SMTP_URL",
                permanent=False,
            )
        if isinstance(exc, aiosmtplib.SMTPSenderRefused):
            return DeliveryError(
                f"{where}: sender {exc.sender} refused ({exc.code} {_oneline(exc.message)}); "
                "check SIGNBOT_SMTP_FROM",
                permanent=False,
            )
        if isinstance(exc, aiosmtplib.SMTPDataError):
            return DeliveryError(
                f"{where}: message refused: {exc.code} {_oneline(exc.message)}",
                permanent=exc.code >= 500,
            )
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return DeliveryError(f"{where}: {exc.code} {_oneline(exc.message)}", permanent=False)
        if isinstance(exc, aiosmtplib.SMTPNotSupported) and "SMTPUTF8" in str(exc):
            return DeliveryError(
                f"{where}: the address needs SMTPUTF8, which the server does not offer",
                permanent=True,
            )
        # Connect errors, timeouts, disconnections, STARTTLS not offered, TLS failures.
        detail = f"{type(exc).__name__}: {_oneline(str(exc))}"
        return DeliveryError(f"{where}: {detail}", permanent=False)


def _oneline(text: str) -> str:
    return " ".join(str(text).split())[:300]


class FileTransport:
    """Writes each email as an ``.eml`` file: the embedded default, and sandbox mail.

    ``{folder}/{UTC timestamp}-{kind}-{recipient}.eml``, e.g.
    ``20261128T101500.123456Z-invitation-alice-example-com.eml``, written atomically with mode
    0600 (``files.write_new``). The caller logs the returned path, never the link inside.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"FileTransport({str(self.folder)!r})"

    async def send(self, msg: EmailMessage) -> str:
        data = msg.as_bytes()
        stem = f"{timestamp()}-{_slug(msg)}"
        try:
            path = await asyncio.to_thread(write_new, self.folder, stem, ".eml", data)
        except OSError as exc:
            raise DeliveryError(f"file {self.folder}: {exc}", permanent=False) from None
        return f"file {path}"


def _slug(msg: EmailMessage) -> str:
    kind = str(msg.get("X-Signbot-Kind", ""))
    if not kind:
        kind = str(msg.get("Message-ID", "")).strip("<>").split("@")[0]
    to = getaddresses(msg.get_all("To", []))
    who = to[0][1] if to else ""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{kind} {who}").strip("-").lower()
    return slug[:80] or "message"


def mail_transport(smtp_url: str | None, mail_dir: Path, *, timeout: float) -> MailTransport:
    """SMTP when a URL is configured, ``.eml`` files under ``mail_dir`` otherwise.

    Sandbox (``sk_test_``) envelopes must never reach a real inbox: call this with
    ``smtp_url=None`` for them, whatever the settings say.
    """
    if smtp_url:
        return SmtpTransport(smtp_url, timeout=timeout)
    return FileTransport(mail_dir)
