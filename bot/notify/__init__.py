"""Notifications: email (SMTP + Jinja2) and SMS.

This package says *what* is sent and *how*; the outbox job (``bot.jobs``) decides *when*, and
retries. A job builds a ``MailContext``, renders it, and hands the result to a transport:

    msg = render_email(ctx, from_address=settings.smtp_from)
    where = await mail_transport(settings.smtp_url, settings.data_dir / "mail",
                                 timeout=settings.smtp_timeout_seconds).send(msg)
    text = render_sms(ctx)
    where = await sms_provider(settings.sms_url, settings.sms_from, settings.data_dir / "sms",
                               timeout=10.0).send(phone, text)

Modules:

- ``messages`` — ``Kind``, ``MailContext``, ``Attachment``; ``render_email``, ``render_sms``.
  Templates under ``templates/`` (one layout, one small template per kind and format),
  words under ``locales/`` (en, fr, de, nl, vi; English fills any gap).
- ``mail`` — ``SmtpTransport`` (aiosmtplib; STARTTLS, implicit TLS, AUTH from the URL),
  ``FileTransport`` (``.eml`` files: the embedded default and every sandbox message).
- ``sms`` — ``HttpSms`` (Twilio-compatible), ``FileSms``; ``normalize_phone`` (E.164).
- ``errors`` — ``DeliveryError(message, permanent=...)``: the only thing a transport raises.

Rules: a signing link or code lives in the message and nowhere else — never in a log line, an
exception or a transport's ``repr`` (nor do SMTP passwords and SMS tokens). Sandbox envelopes
go to the file transports whatever the settings say: pass ``None`` as the URL for them.
"""

from bot.notify.errors import DeliveryError
from bot.notify.mail import FileTransport, MailTransport, SmtpTransport, mail_transport
from bot.notify.messages import Attachment, Kind, MailContext, render_email, render_sms
from bot.notify.sms import FileSms, HttpSms, SmsProvider, normalize_phone, sms_provider

__all__ = [
    "Attachment",
    "DeliveryError",
    "FileSms",
    "FileTransport",
    "HttpSms",
    "Kind",
    "MailContext",
    "MailTransport",
    "SmsProvider",
    "SmtpTransport",
    "mail_transport",
    "normalize_phone",
    "render_email",
    "render_sms",
    "sms_provider",
]
