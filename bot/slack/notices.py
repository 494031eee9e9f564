"""What the channel, the requester and the signers hear as a request moves.

* :func:`follow`: one verified webhook delivery → the row absorbs the provider's envelope and
  the posts it calls for are queued as durable ``slack`` tasks, in one transaction that also
  marks the delivery handled. :func:`perform` (the task's handler) makes one post.
* :func:`invite_signers`: workspace members whose turn it is get a DM with their "Review and
  sign" button — once each (``dm_sent`` in the row's recipients). Called after sending (at
  creation or on approval) and after every update, since a sequential envelope invites the
  next group only when the previous one is done.

**Why the posts are tasks** (DESIGN: "Slack posts (outbox too)"). Made inside the webhook
request, a Slack hiccup part-way failed the delivery and the provider's retry posted again
what had already gone out, and a replica killed between a post and its record did the same.
As tasks, each post is its own unit: queued once (the task key is the event id and the post's
number, and the queueing commits with the delivery's "done"), retried alone with backoff
while Slack is down or rate limiting, and never repeated because another post failed. What
remains is the window every outside send has (email included): a worker killed after Slack
took a post and before the task is marked done posts it again on takeover.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import Session

from bot.jobs.models import Task
from bot.jobs.tasks import enqueue
from bot.provider.models import Envelope
from bot.slack import install, requests, store, views
from bot.slack.core import Core
from bot.slack.models import SignRequest
from bot.slack.reminders import next_due, record_expiry
from bot.slack.requests import ACTIVE
from bot.timeutil import utcnow

log = logging.getLogger("signbot.slack")

KIND = "slack"
"""The task kind of the bot's posts."""

Step = dict[str, Any]


def plan(row: SignRequest, name: str, data: dict[str, Any], envelope: Envelope) -> list[Step]:
    """The posts webhook ``name`` calls for, in order (texts are made now, escaped)."""
    if name == "envelope.expired" or envelope.status == "EXPIRED":
        return [{"do": "expire"}]
    steps: list[Step] = [{"do": "status"}]
    who = views.escape(" ".join(str(data.get("name") or data.get("email") or "Someone").split()))
    if name == "recipient.signed":
        steps.append({"do": "thread", "text": f"✅ {who} signed."})
    elif name == "recipient.approved":
        steps.append({"do": "thread", "text": f"✅ {who} approved."})
    elif name == "envelope.declined":
        reason = str(data.get("declineReason") or data.get("decline_reason") or "")
        text = f"❌ Declined:\n{views.quote(reason, 1000)}" if reason.strip() else "❌ Declined."
        steps.append({"do": "thread", "text": text})
        dm = f"Request #{row.number} was declined. {text}"
        steps.append({"do": "dm", "user": row.requester_id, "text": dm})
    elif name == "envelope.completed":
        steps.append({"do": "upload"})
        subject = views.safe(row.subject, 300)
        done = f"Request #{row.number} ({subject}) is complete."
        steps.append({"do": "dm", "user": row.requester_id, "text": done})
    steps.append({"do": "invite", "message": envelope.message})
    return steps


async def follow(
    core: Core,
    row: SignRequest,
    name: str,
    data: dict[str, Any],
    *,
    delivery: tuple[str, str],
    quiet: bool = False,
) -> int:
    """The request's envelope changed (webhook ``name`` with its ``data``): absorb it and queue
    the posts, marking the ``delivery`` (event id, claim token) handled in the same
    transaction; how many posts were queued. ``quiet``: the workspace uninstalled signbot, so
    the row keeps up and Slack hears nothing. Raises (nothing written) when the provider
    cannot be asked: the delivery is then given back for the provider's retry."""
    envelope = await core.provider.get_envelope(row.envelope_id or "")
    steps = [] if quiet else plan(row, name, data, envelope)
    expiring = bool(steps) and steps[0]["do"] == "expire"
    event_id, token = delivery

    def work(session: Session) -> int:
        current = session.get(SignRequest, row.id, with_for_update=True)
        if current is None:  # deleted meanwhile: nothing to say
            store.finish_delivery(session, event_id, token)
            return 0
        if not expiring:
            # an expiry is absorbed by its step (record_expiry), which announces it only if
            # nothing recorded it first
            requests.absorb(current, envelope)
            fresh = current.next_reminder_at is None and current.reminders_sent == 0
            if fresh and current.status in ACTIVE:
                # sent now (at creation, on approval): the reminder job takes it from here
                due = next_due(current, utcnow())
                if due is not None:
                    store.touch(current, next_reminder_at=due)
            session.add(current)
        for number, step in enumerate(steps):
            payload = {"request": row.id, "event": event_id, **step}
            enqueue(session, KIND, payload, key=f"{event_id[:100]}:{number}")
        store.finish_delivery(session, event_id, token)
        return len(steps)

    return await core.db.run(work)


class Poster:
    """The ``slack`` task's handler: one queued post, for the request's own workspace."""

    def __init__(self, core: Core) -> None:
        self.core = core

    async def __call__(self, task: Task) -> None:
        step = task.payload
        row = await self.core.load(str(step.get("request") or ""))
        if row is None:
            return  # the request is gone (its workspace's data was deleted)
        if await install.silenced(self.core.db, row.team_id):
            return
        client = await self.core.client_for(row.team_id)
        if client is None:
            return
        with self.core.bound(client), self.core.durably():
            await perform(self.core, row, step)


async def perform(core: Core, row: SignRequest, step: Step) -> None:
    """One post of :func:`plan`. Each reads the row as it is now: the status message shows the
    latest state whichever post runs last."""
    what = step.get("do")
    if what == "status":
        await core.refresh_status(row)
    elif what == "thread":
        await core.thread(row, str(step["text"]))
    elif what == "dm":
        await core.dm(str(step["user"]), text=str(step["text"]))
    elif what == "upload":
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
    elif what == "invite":
        await invite_signers(core, row, step.get("message"))
    elif what == "expire":
        # whichever of this notice and the reminder job hears of it first announces it
        envelope = await core.provider.get_envelope(row.envelope_id or "")
        await record_expiry(core.db, core.client, row.id, envelope)
    else:
        log.warning("unknown queued Slack post %r for request %s; dropped", what, row.id)


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
