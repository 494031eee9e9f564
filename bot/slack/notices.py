"""What the channel, the requester and the signers hear as a request moves.

* :func:`follow`: one verified webhook delivery → the row absorbs the provider's envelope,
  the status message is updated in place, the thread and the requester hear the news.
* :func:`invite_signers`: workspace members whose turn it is get a DM with their "Review and
  sign" button — once each (``dm_sent`` in the row's recipients). Called after sending (at
  creation or on approval) and after every update, since a sequential envelope invites the
  next group only when the previous one is done.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.slack import requests, store, views
from bot.slack.core import Core
from bot.slack.models import SignRequest
from bot.slack.reminders import next_due, record_expiry
from bot.slack.requests import ACTIVE
from bot.timeutil import utcnow

log = logging.getLogger("signbot.slack")


async def follow(core: Core, row: SignRequest, name: str, data: dict[str, Any]) -> None:
    """The request's envelope changed (webhook ``name`` with its ``data``)."""
    envelope = await core.provider.get_envelope(row.envelope_id or "")
    if name == "envelope.expired" or envelope.status == "EXPIRED":
        # whichever of this notice and the reminder job hears of it first announces it
        await record_expiry(core.db, core.client, row.id, envelope)
        return
    row, _ = await core.change(row.id, lambda r: requests.absorb(r, envelope))
    if row.next_reminder_at is None and row.reminders_sent == 0 and row.status in ACTIVE:
        # sent now (at creation, on approval): the reminder job takes it from here
        due = next_due(row, utcnow())
        if due is not None:
            row, _ = await core.change(row.id, lambda r: store.touch(r, next_reminder_at=due))
    await core.refresh_status(row)
    who = views.escape(" ".join(str(data.get("name") or data.get("email") or "Someone").split()))
    if name == "recipient.signed":
        await core.thread(row, f"✅ {who} signed.")
    elif name == "recipient.approved":
        await core.thread(row, f"✅ {who} approved.")
    elif name == "envelope.declined":
        reason = str(data.get("declineReason") or data.get("decline_reason") or "")
        text = f"❌ Declined:\n{views.quote(reason, 1000)}" if reason.strip() else "❌ Declined."
        await core.thread(row, text)
        await core.dm(row.requester_id, text=f"Request #{row.number} was declined. {text}")
    elif name == "envelope.completed":
        pdf = await core.provider.signed_document(row.envelope_id or "")
        await core.call(
            "files.upload",
            core.client.files_upload_v2,
            channel=row.channel_id,
            thread_ts=row.message_ts,
            content=pdf,
            filename=f"{row.envelope_id}-signed.pdf",
            title=f"{row.subject} (signed)",
            initial_comment="🎉 Everyone has signed. Here is the sealed PDF.",
        )
        await core.dm(
            row.requester_id,
            text=f"Request #{row.number} ({views.safe(row.subject, 300)}) is complete.",
        )
    await invite_signers(core, row, envelope.message)


def _due(recipient: dict[str, Any]) -> bool:
    return (
        bool(recipient.get("slack_user_id"))
        and (recipient.get("role") or "SIGNER").upper() in requests.ACTING_ROLES
        and (recipient.get("status") or "").upper() in requests.WAITING
        and bool(recipient.get("sign_url_sealed"))
        and not recipient.get("dm_sent")
    )


async def invite_signers(core: Core, row: SignRequest, message: str | None = None) -> int:
    """DM every member whose turn it is and who was not DM'd yet; how many were.

    Each DM is claimed in the row (``dm_sent``) before it is posted, in the row's own
    transaction, so two deliveries handled at once cannot DM the same person twice (at most
    once: a DM that Slack refuses is not retried)."""
    if row.status not in requests.ACTIVE:
        return 0

    def claim(r: SignRequest) -> list[dict[str, Any]]:
        # only with a link in hand: a notice that beats the creation's own record (which
        # keeps the links) must not use up the DM
        chosen = [dict(p) for p in r.recipients if _due(p) and p.get("sign_url_sealed")]
        if chosen:
            ids = {p["email"] for p in chosen}
            r.recipients = [
                {**p, "dm_sent": True} if p["email"] in ids else p for p in r.recipients
            ]
            store.touch(r)
        return chosen

    row, chosen = await core.change(row.id, claim)
    for recipient in chosen:
        url = core.sign_url(recipient)
        if not url:
            continue
        try:
            body = views.signer_dm(
                subject=row.subject,
                sign_url=url,
                requester_id=row.requester_id,
                message=message,
                expires_at=row.expires_at,
            )
        except ValueError:
            log.warning("request %s: a sign link unusable in Slack; no DM", row.id)
            continue
        await core.dm(recipient["slack_user_id"], **body)
    return len(chosen)


async def remind_signers(core: Core, row: SignRequest) -> int:
    """A reminder DM to the members who still have to sign (after a remind)."""
    count = 0
    for recipient in row.recipients:
        waiting = (recipient.get("status") or "").upper() in requests.WAITING
        role = (recipient.get("role") or "SIGNER").upper()
        url = core.sign_url(recipient) if waiting and role in requests.ACTING_ROLES else None
        if not url or not recipient.get("slack_user_id"):
            continue
        try:
            body = views.signer_dm(
                subject=row.subject,
                sign_url=url,
                requester_id=row.requester_id,
                expires_at=row.expires_at,
                reminder=True,
            )
        except ValueError:
            continue
        if await core.dm(recipient["slack_user_id"], **body) is not None:
            count += 1
    return count
