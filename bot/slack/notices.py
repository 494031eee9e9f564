"""What the channel, the requester and the signers hear as a request moves.

* :func:`follow`: one verified webhook delivery → the row absorbs the provider's envelope and
  the posts it calls for are queued as durable ``slack`` tasks, in one transaction that also
  marks the delivery handled. :func:`perform` (the task's handler) makes one post.
* :func:`invite_signers`: workspace members whose turn it is get a DM with their "Review and
  sign" button — once each (``dm_sent`` in the row's recipients). Called after sending (at
  creation or on approval) and after every update, since a sequential envelope invites the
  next group only when the previous one is done.

**Why the posts are tasks** (the shared DESIGN.md: "Slack posts (outbox too)"). Made inside
the webhook request, a Slack hiccup part-way failed the delivery and the provider's retry
posted again what had already gone out, and a replica killed between a post and its record
did the same.
As tasks, each post is its own unit: queued once (the task key is the event id and the post's
number, and the queueing commits with the delivery's "done"), retried alone with backoff
while Slack is down or rate limiting, and never repeated because another post failed. What
remains is the window every outside send has (email included): a worker killed after Slack
took a post and before the task is marked done posts it again on takeover. Posts of one
request may reach the thread out of order (two run at once, retries reshuffle them); the
status message shows the latest state whichever runs last.

Invitations are claimed (``dm_sent``) in the same transaction and queued one task per member,
so a refused DM is retried alone and never costs another member theirs. An expiry is
recorded there too (:func:`~bot.slack.reminders.mark_expired`), so only one of this route and
the reminder job announces it.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import Session

from bot.jobs.models import Task
from bot.jobs.tasks import TaskFailed, enqueue
from bot.provider.errors import ProviderNotFound
from bot.slack import install, requests, store, views
from bot.slack.core import Core
from bot.slack.models import SignRequest
from bot.slack.reminders import expiry_notices, mark_expired, next_due
from bot.slack.requests import ACTIVE
from bot.timeutil import utcnow

log = logging.getLogger("signbot.slack")

KIND = "slack"
"""The task kind of the bot's posts."""

Step = dict[str, Any]


#: The invitation DM's personal message, as queued (the DM shows at most 2000 characters).
MESSAGE_KEPT = 2000


def plan(row: SignRequest, name: str, data: dict[str, Any]) -> list[Step]:
    """The posts webhook ``name`` calls for, in order (texts are made now, escaped); the
    invitations are added by :func:`follow`, which claims them."""
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
    return steps


def _expiry_steps(row: SignRequest) -> list[Step]:
    thread, dm = expiry_notices(row)
    return [
        {"do": "status"},
        {"do": "thread", "text": thread},
        {"do": "dm", "user": row.requester_id, "text": dm},
    ]


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
    expired = name == "envelope.expired" or envelope.status == "EXPIRED"
    event_id, token = delivery

    def work(session: Session) -> int:
        current = session.get(SignRequest, row.id, with_for_update=True)
        steps: list[Step] = []
        if current is None:  # deleted meanwhile: nothing to say
            pass
        elif expired:
            # announced only by whichever of this notice and the reminder job records it
            marked = mark_expired(session, row.id, envelope)
            steps = _expiry_steps(marked) if marked is not None else []
        else:
            requests.absorb(current, envelope)
            fresh = current.next_reminder_at is None and current.reminders_sent == 0
            if fresh and current.status in ACTIVE:
                # sent now (at creation, on approval): the reminder job takes it from here
                due = next_due(current, utcnow())
                if due is not None:
                    store.touch(current, next_reminder_at=due)
            steps = plan(current, name, data)
            message = (envelope.message or "")[:MESSAGE_KEPT] or None
            steps += [
                {"do": "invite", "email": p["email"], "message": message}
                for p in (claim_invites(current) if not quiet else [])
            ]
            session.add(current)
        if quiet:
            steps = []
        for number, step in enumerate(steps):
            payload = {"request": row.id, "event": event_id, **step}
            enqueue(session, KIND, payload, key=f"{event_id}:{number}")
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
        try:
            pdf = await core.provider.signed_document(row.envelope_id or "")
        except ProviderNotFound as exc:  # deleted at the provider: retrying cannot help
            raise TaskFailed(f"the signed PDF is gone at the provider: {exc}") from exc
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
        recipient = next((p for p in row.recipients if p.get("email") == step.get("email")), None)
        if recipient is not None and row.status in requests.ACTIVE:
            await send_invite(core, row, recipient, step.get("message"))
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


def claim_invites(row: SignRequest) -> list[dict[str, Any]]:
    """Mark, in the row (locked by the caller), every member whose turn it is and who was not
    DM'd yet as DM'd (``dm_sent``); those recipients. The mark is the claim: two deliveries
    handled at once cannot invite the same person twice. Only with a link in hand: a notice
    that beats the creation's own record (which keeps the links) must not use up the DM."""
    if row.status not in requests.ACTIVE:
        return []
    chosen = [dict(p) for p in row.recipients if _due(p)]
    if chosen:
        emails = {p["email"] for p in chosen}
        row.recipients = [
            {**p, "dm_sent": True} if p["email"] in emails else p for p in row.recipients
        ]
        store.touch(row)
    return chosen


async def send_invite(
    core: Core,
    row: SignRequest,
    recipient: dict[str, Any],
    message: str | None = None,
    *,
    reminder: bool = False,
) -> Any:
    """The "Review and sign" DM (or its reminder) to one member; Slack's answer, or None when
    there was nothing to send or Slack refused."""
    url = core.sign_url(recipient)
    if not url:
        return None
    try:
        body = views.signer_dm(
            subject=row.subject,
            sign_url=url,
            requester_id=row.requester_id,
            message=message,
            expires_at=row.expires_at,
            reminder=reminder,
        )
    except ValueError:
        log.warning("request %s: a sign link unusable in Slack; no DM", row.id)
        return None
    return await core.dm(recipient["slack_user_id"], **body)


async def invite_signers(core: Core, row: SignRequest, message: str | None = None) -> int:
    """DM every member whose turn it is and who was not DM'd yet, now (after creating or
    approving a request: the requester is watching); how many were. At most once each: a DM
    Slack refuses is not retried. The webhook route queues them as tasks instead."""
    row, chosen = await core.change(row.id, claim_invites)
    for recipient in chosen:
        await send_invite(core, row, recipient, message)
    return len(chosen)


async def remind_signers(core: Core, row: SignRequest) -> int:
    """A reminder DM to the members who still have to sign (after a remind)."""
    count = 0
    for recipient in row.recipients:
        waiting = (recipient.get("status") or "").upper() in requests.WAITING
        role = (recipient.get("role") or "SIGNER").upper()
        if not (waiting and role in requests.ACTING_ROLES and recipient.get("slack_user_id")):
            continue
        if await send_invite(core, row, recipient, reminder=True) is not None:
            count += 1
    return count
