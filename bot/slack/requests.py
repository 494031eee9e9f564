"""Turning a submitted `/sign` modal into a request at the provider, and keeping its channel
message in step with what the provider reports.

Everything here reaches the signing service through ``bot.provider`` only, so the bot works
against the hosted Certyneo or another deployment exactly as against its own. A provider that
refuses leaves nothing half-made: a draft created for a request that then failed is deleted,
and the requester is told what went wrong in words.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

import httpx
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import IntegrityError

from bot.db import Database
from bot.provider import ProviderClient
from bot.provider.errors import ProviderError
from bot.provider.models import Envelope
from bot.slack import store, views
from bot.slack.ids import is_slack_id
from bot.slack.models import SignRequest
from bot.slack.parsing import Submission
from bot.timeutil import iso, utcnow

log = logging.getLogger("signbot.slack")

MAX_PDF_BYTES = 50 * 1024 * 1024
MAX_LOOKUPS = 20
"""Outside addresses looked up as workspace members per request (``users.lookupByEmail`` is
rate limited; beyond this many, people are simply treated as outside Slack)."""
ACTIVE = frozenset({"SENT", "DELIVERED", "PARTIALLY_SIGNED"})
"""Request statuses in which someone still has to sign: remind and cancel apply."""
WAITING = frozenset({"SENT", "VIEWED"})
"""Recipient statuses of someone whose turn it is and who has not acted yet."""
ACTING_ROLES = frozenset({"SIGNER", "APPROVER"})

Seal = Callable[[str], str]


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    user_id: str | None = None


class BotError(Exception):
    """Something the requester must be told, in a sentence (shown as an ephemeral message)."""


async def people(client: AsyncWebClient, submission: Submission) -> list[Person]:
    """Recipients in order: template role slots, or members then outside people."""
    out: list[Person] = []
    for slot in submission.slots:
        if slot.user_id:
            out.append(await member(client, slot.user_id))
        elif slot.email:
            out.append(Person(slot.name or slot.email.split("@")[0], slot.email))
    for user_id in submission.members:
        out.append(await member(client, user_id))
    out.extend(Person(name or email.split("@")[0], email) for name, email in submission.outside)
    return await _members_by_email(client, out)


async def _members_by_email(client: AsyncWebClient, people: list[Person]) -> list[Person]:
    """People typed as addresses who are in fact workspace members get their user id (so
    they get a DM with their sign link and see the request in App Home). Best effort: an
    address Slack does not know, or a refusal, leaves the person outside Slack."""
    out: list[Person] = []
    lookups = 0
    for person in people:
        if person.user_id is None and lookups < MAX_LOOKUPS:
            lookups += 1
            user_id = await lookup(client, person.email)
            if user_id:
                person = Person(person.name, person.email, user_id)
        out.append(person)
    return out


async def lookup(client: AsyncWebClient, email: str) -> str | None:
    """The id of the active member with this address, or None (``users.lookupByEmail``)."""
    try:
        answer = await client.users_lookupByEmail(email=email)
    except SlackApiError:
        return None
    user = answer.get("user") or {}
    if user.get("deleted") or user.get("is_bot") or not is_slack_id(user.get("id")):
        return None
    return str(user["id"])


async def member(client: AsyncWebClient, user_id: str) -> Person:
    answer = await client.users_info(user=user_id)
    user = answer["user"]
    email = (user.get("profile") or {}).get("email")
    if not email:
        raise BotError(f"<@{user_id}> has no email address visible to signbot")
    name = user.get("real_name") or (user.get("profile") or {}).get("real_name") or user["name"]
    return Person(name, email, user_id)


async def download(client: AsyncWebClient, file_id: str) -> tuple[bytes, str]:
    """The uploaded PDF's bytes, fetched with the bot token (Slack's files are private)."""
    info = (await client.files_info(file=file_id))["file"]
    if (info.get("size") or 0) > MAX_PDF_BYTES:
        raise BotError("The file is larger than 50 MB")
    if info.get("is_external"):
        raise BotError("Upload the PDF to Slack itself (a linked external file cannot be read)")
    url = str(info.get("url_private_download") or info.get("url_private") or "")
    if not _slack_file_url(url, client.base_url):
        # the bot token goes with the request: only ever to Slack's own file host
        raise BotError("Slack gave signbot an unexpected address for the file")
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(url, headers={"Authorization": f"Bearer {client.token}"})
    if response.status_code != 200 or not response.content.startswith(b"%PDF"):
        raise BotError("Slack did not give signbot the uploaded file as a PDF")
    return response.content, info.get("name") or "document.pdf"


def _slack_file_url(url: str, api_base: str) -> bool:
    """``https://files.slack.com/…``, or the configured Web API's own host (a test fake or a
    staging proxy reached through ``SLACK_API_URL``)."""
    parsed, api = urlparse(url), urlparse(api_base)
    if parsed.scheme == "https" and parsed.hostname == "files.slack.com":
        return True
    return bool(parsed.hostname) and (parsed.scheme, parsed.netloc) == (api.scheme, api.netloc)


def envelope_payload(
    submission: Submission, recipients: list[Person], document_id: str | None, extensions: bool
) -> dict[str, Any]:
    """The create request, in Certyneo's fields (our extensions only when the provider has
    them: the hosted Certyneo would refuse unknown members)."""
    payload: dict[str, Any] = {
        "subject": submission.subject,
        "recipients": [
            {
                "email": p.email,
                "name": p.name,
                **({"order": i + 1} if submission.sequential else {}),
            }
            for i, p in enumerate(recipients)
        ],
        "expiresAt": iso(utcnow() + timedelta(days=submission.expiry_days)),
    }
    if submission.message:
        payload["message"] = submission.message
    if submission.template_id:
        payload["templateId"] = submission.template_id
    else:
        payload["documentIds"] = [document_id]
    if extensions:  # "no reminders" must say so, or the provider applies its default
        payload["reminders"] = {
            "intervalDays": submission.remind_days,
            "maxCount": 3 if submission.remind_days else 0,
        }
    return payload


def absorb(request: SignRequest, envelope: Envelope, seal: Seal | None = None) -> None:
    """The provider's view of the envelope into the request row.

    What only the bot knows survives: each recipient's member id, whether their DM went out
    (``dm_sent``), and their sign link (``sign_url_sealed``). The link comes only in the
    answers of create and send (``get`` omits it), so it is kept from those — sealed, since
    it lets anyone sign as that person: pass ``seal`` with such an answer. It is never
    logged nor shown anywhere but to its own recipient."""
    known = {r.get("email", "").lower(): r for r in request.recipients}
    recipients = []
    for recipient in envelope.recipients:
        before = known.get(recipient.email.lower(), {})
        entry: dict[str, Any] = {
            "name": recipient.name or before.get("name") or recipient.email,
            "email": recipient.email,
            "slack_user_id": before.get("slack_user_id"),
            "role": recipient.role,
            "status": recipient.status,
            "reason": recipient.decline_reason,
        }
        if before.get("dm_sent"):
            entry["dm_sent"] = True
        if seal is not None and recipient.sign_url:
            entry["sign_url_sealed"] = seal(recipient.sign_url)
        elif before.get("sign_url_sealed"):
            entry["sign_url_sealed"] = before["sign_url_sealed"]
        recipients.append(entry)
    store.touch(request, recipients=recipients, envelope_id=envelope.id)
    if request.status in FINAL:
        return  # a late, older snapshot (webhooks are delivered in parallel) never reopens it
    if _rank(envelope.status) < _rank(request.status):
        return
    if request.status not in ("AWAITING_APPROVAL", "REJECTED") or envelope.status != "DRAFT":
        store.touch(request, status=envelope.status)


FINAL = frozenset({"COMPLETED", "DECLINED", "VOIDED", "EXPIRED", "REJECTED", "FAILED"})
_ORDER = ("DRAFT", "SENT", "DELIVERED", "PARTIALLY_SIGNED")


def _rank(status: str) -> int:
    """Progress of a status: the bot's own before-sending ones lowest, then the provider's
    in-progress ones in order, then anything else (finished, returned) highest."""
    if status in ("CREATING", "AWAITING_APPROVAL"):
        return -1
    return _ORDER.index(status) if status in _ORDER else len(_ORDER)


def view_of(request: SignRequest, *, can_remind: bool, can_cancel: bool) -> views.RequestView:
    active = request.status in ACTIVE
    declined = next((r for r in request.recipients if r.get("status") == "DECLINED"), None)
    return views.RequestView(
        id=request.id,
        number=request.number,
        subject=request.subject,
        requester_id=request.requester_id,
        status=request.status,
        recipients=tuple(
            views.RecipientView(
                name=r.get("name") or r.get("email") or "",
                email=r.get("email"),
                user_id=r.get("slack_user_id"),
                status=r.get("status") or "PENDING",
                role=r.get("role") or "SIGNER",
                reason=r.get("reason"),
            )
            for r in request.recipients
        ),
        envelope_id=request.envelope_id,
        can_remind=can_remind and active,
        # A draft awaiting approval is deleted (core API), not voided: always cancellable.
        can_cancel=(can_cancel and active) or request.status == "AWAITING_APPROVAL",
        approver_id=request.approver_id,
        actor_id=(declined or {}).get("slack_user_id"),
        reason=request.decision_reason or (declined or {}).get("reason"),
        expires_at=request.expires_at,
    )


async def create(
    db: Database,
    provider: ProviderClient,
    client: AsyncWebClient,
    *,
    team_id: str,
    requester_id: str,
    submission: Submission,
    seal: Seal | None = None,
) -> SignRequest:
    """The whole of a submission: recipients, document, envelope, then sent, or held as a
    DRAFT for approval (nothing goes out before). Raises BotError / ProviderError with
    nothing left half-made. ``seal`` keeps the sign links of the answer (see :func:`absorb`);
    the caller posts the status message and the DMs."""
    recipients = await people(client, submission)
    if not recipients:
        raise BotError("Add at least one recipient")
    channel = submission.channel_id or submission.metadata.channel_id or requester_id
    caps = await provider.capabilities()
    approval = submission.approval and bool(submission.approver_id)
    values = {
        "team_id": team_id,
        "channel_id": channel,
        "requester_id": requester_id,
        "subject": submission.subject,
        "template_id": submission.template_id,
        "approver_id": submission.approver_id if approval else None,
        "recipients": [
            {"name": p.name, "email": p.email, "slack_user_id": p.user_id, "status": "PENDING"}
            for p in recipients
        ],
        "reminder_interval_days": submission.remind_days,
        "reminder_max_count": 3 if submission.remind_days else 0,
        "expires_at": utcnow() + timedelta(days=submission.expiry_days),
    }
    request = await _new_request(db, values)
    envelope: Envelope | None = None
    try:
        document_id = None
        if submission.file is not None and not submission.template_id:
            content, filename = await download(client, submission.file.id)
            document = await provider.upload_document(
                content, filename, idempotency_key=f"{request.id}-document"
            )
            document_id = document.id
        payload = envelope_payload(submission, recipients, document_id, caps.remind)
        envelope = await provider.create_envelope(payload, idempotency_key=f"{request.id}-create")
        draft_id = envelope.id
        # known before it is sent: the provider's first webhooks find the request
        await db.run(lambda s: _set(s, request.id, envelope_id=draft_id))
        if not approval:
            envelope = await _send(provider, draft_id, f"{request.id}-send")
    except Exception as exc:
        if envelope is not None and envelope.status == "DRAFT":
            try:
                await provider.delete_envelope(envelope.id)
            except ProviderError:
                log.warning("could not delete the draft %s of a failed request", envelope.id)
        if not isinstance(exc, ProviderError | BotError):
            log.exception("request %s failed unexpectedly", request.id)
        error = str(exc) if isinstance(exc, ProviderError | BotError) else "an unexpected error"
        await db.run(lambda s: _failed(s, request.id, error))
        if isinstance(exc, ProviderError | BotError):
            raise
        raise BotError("an unexpected error stopped it; it has been logged") from exc
    created = envelope

    def record(session: Any) -> SignRequest:
        row = session.get(SignRequest, request.id)
        absorb(row, created, seal)
        if approval:
            store.touch(row, status="AWAITING_APPROVAL")
        else:
            schedule_reminders(row)
        session.add(row)
        return row

    return await db.run(record)


async def _send(provider: ProviderClient, envelope_id: str, key: str) -> Envelope:
    """Send, and when the answer is lost (timeout, 5xx after the provider acted) ask the
    provider what happened rather than guess: a sent envelope is a success."""
    try:
        return await provider.send_envelope(envelope_id, idempotency_key=key)
    except ProviderError:
        try:
            current = await provider.get_envelope(envelope_id)
        except ProviderError:
            raise
        if current.status in ("DRAFT", "SCHEDULED"):
            raise
        return current


async def _new_request(db: Database, values: dict[str, Any]) -> SignRequest:
    """A new row with the next ``#n``; two requests racing for a number retry."""
    for attempt in range(5):
        try:
            return await db.run(lambda s: store.new_request(s, **values))
        except IntegrityError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def schedule_reminders(row: SignRequest) -> None:
    """The reminder job's first look at a request that has just been sent."""
    from bot.slack.reminders import next_due  # the job imports this module

    if row.next_reminder_at is None and row.reminders_sent == 0:
        row.next_reminder_at = next_due(row, utcnow())


def _set(session: Any, request_id: str, **values: Any) -> None:
    row = session.get(SignRequest, request_id)
    store.touch(row, **values)
    session.add(row)


def _failed(session: Any, request_id: str, error: str) -> None:
    row = session.get(SignRequest, request_id)
    store.touch(row, status="FAILED", error=error[:1000])
    session.add(row)
