"""How an SMS leaves: a Twilio-compatible HTTP API, or a folder of ``.txt`` files.

``HttpSms`` speaks the Messages resource of Twilio's 2010-04-01 API (and the many providers
that copied it): a form POST of ``To``, ``From`` (or ``MessagingServiceSid`` when the sender
is a messaging service ``MG…``) and ``Body``, with HTTP Basic credentials (account SID and
auth token) taken from the configured URL. Classification:

    answer                                      permanent?
    2xx                                         delivered: ``sms HOST STATUS SID``
    400, 404, 422 and other 4xx                 yes — the number or body is refused
    401, 403                                    no  — our credentials; fixable by an operator
    408, 409, 425, 429                          no  — try again later
    5xx, connection errors, timeouts            no

Bodies are never logged nor put in errors: they carry signing links and codes.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from bot.notify.errors import DeliveryError
from bot.notify.files import timestamp, write_new

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SEPARATORS = re.compile(r"[\s\-\u00a0\u2010-\u2015]")
_RETRYABLE_4XX = {401, 403, 408, 409, 425, 429}


def normalize_phone(raw: str) -> str:
    """``+32 470 12-34-56`` → ``+32470123456``; anything but E.164 raises ``ValueError``.

    Only spaces and dashes are forgiven. National formats (``0470…``), ``00`` prefixes and
    parentheses are refused rather than guessed: a wrong guess texts a stranger a signing link.
    """
    phone = _SEPARATORS.sub("", raw or "")
    if not _E164.match(phone):
        raise ValueError(
            f"{(raw or '')[:32]!r} is not an international phone number in E.164 form "
            "(a + then the country code and number, e.g. +32470123456)"
        )
    return phone


class SmsProvider(Protocol):
    """Sends one text; returns where it went, raises ``DeliveryError``."""

    async def send(self, to: str, body: str) -> str: ...


class FileSms:
    """Writes each text to ``{folder}/{UTC timestamp}-{digits}.txt``: the embedded default
    and sandbox SMS, readable by a developer or a test."""

    def __init__(self, folder: Path, from_number: str | None = None) -> None:
        self.folder = Path(folder)
        self.from_number = from_number

    def __repr__(self) -> str:
        return f"FileSms({str(self.folder)!r})"

    async def send(self, to: str, body: str) -> str:
        to = _checked(to)
        text = f"To: {to}\nFrom: {self.from_number or 'signbot'}\n\n{body}\n"
        stem = f"{timestamp()}-{to.lstrip('+')}"
        try:
            path = await asyncio.to_thread(
                write_new, self.folder, stem, ".txt", text.encode("utf-8")
            )
        except OSError as exc:
            raise DeliveryError(f"file {self.folder}: {exc}", permanent=False) from None
        return f"file {path}"


class HttpSms:
    """Twilio-compatible sender, e.g.
    ``https://ACxxx:token@api.twilio.com/2010-04-01/Accounts/ACxxx/Messages.json``.

    Credentials are moved from the URL into an ``Authorization`` header and never shown by
    ``repr``. Pass ``client`` to share a connection pool (its own timeout then applies);
    without one, each send uses a short-lived client.
    """

    def __init__(
        self,
        url: str,
        from_number: str,
        *,
        timeout: float,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("SMS URL must be an http(s) URL with a host")
        self._auth = (
            httpx.BasicAuth(unquote(parts.username or ""), unquote(parts.password or ""))
            if parts.username
            else None
        )
        netloc = parts.netloc.rpartition("@")[2]  # host[:port], without the credentials
        self.url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        self.host = parts.hostname
        if not from_number:
            raise ValueError("an SMS sender (SIGNBOT_SMS_FROM) is required with SIGNBOT_SMS_URL")
        self.from_number = from_number
        self.timeout = timeout
        self._client = client

    def __repr__(self) -> str:
        return f"HttpSms({self.url!r}, from_number={self.from_number!r})"

    async def send(self, to: str, body: str) -> str:
        to = _checked(to)
        form = {"To": to, "Body": body}
        if re.fullmatch(r"MG[0-9a-fA-F]{32}", self.from_number):
            form["MessagingServiceSid"] = self.from_number
        else:
            form["From"] = self.from_number
        try:
            if self._client is not None:
                response = await self._post(self._client, form)
            else:
                async with httpx.AsyncClient(timeout=self.timeout) as client:
                    response = await self._post(client, form)
        except httpx.TimeoutException:
            raise DeliveryError(
                f"sms {self.host}: no answer within {self.timeout:g} s", permanent=False
            ) from None
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"sms {self.host}: {type(exc).__name__}: {exc}", permanent=False
            ) from None
        return self._outcome(response)

    async def _post(self, client: httpx.AsyncClient, form: dict[str, str]) -> httpx.Response:
        kwargs = {"auth": self._auth} if self._auth else {}
        return await client.post(
            self.url, data=form, headers={"Accept": "application/json"}, **kwargs
        )

    def _outcome(self, response: httpx.Response) -> str:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            payload = {}
        status = response.status_code
        if response.is_success:
            # The provider's id for the message, after where it went: the first word stays
            # the channel ("sms"), like "smtp …" and "file …" from the mail transports.
            sid = payload.get("sid")
            return f"sms {self.host} {status} {sid}" if sid else f"sms {self.host} {status}"
        detail = " ".join(str(payload.get("message") or response.reason_phrase).split())[:300]
        if payload.get("code"):
            detail = f"{detail} (code {payload['code']})"
        permanent = 400 <= status < 500 and status not in _RETRYABLE_4XX
        raise DeliveryError(f"sms {self.host}: HTTP {status}: {detail}", permanent=permanent)


def _checked(to: str) -> str:
    try:
        return normalize_phone(to)
    except ValueError as exc:
        raise DeliveryError(str(exc), permanent=True) from None


def sms_provider(
    sms_url: str | None, sms_from: str | None, sms_dir: Path, *, timeout: float
) -> SmsProvider:
    """The HTTP provider when ``sms_url`` is set, ``.txt`` files under ``sms_dir`` otherwise.
    Sandbox envelopes must pass ``sms_url=None``: their texts never leave the machine."""
    if sms_url:
        return HttpSms(sms_url, sms_from or "", timeout=timeout)
    return FileSms(sms_dir, from_number=sms_from)
