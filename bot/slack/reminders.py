"""Reminders and expiry of the bot's requests, on each request's cadence (APScheduler job).

Why it is shaped this way:

* **Only due rows, through the index.** ``next_reminder_at`` is *the next time this job must
  look at the request*: its next reminder or, once none is left, its expiry (:func:`next_due`).
  The table has no index on ``expires_at``, and scanning it for expiries would read every
  request ever made; folding expiry into the indexed column keeps the scan's cost at the
  number of rows due. Rows that finished meanwhile (a webhook said COMPLETED) are cleared when
  met, so they leave the index range for good.
* **The claim is the commit.** One short transaction selects the due rows (``FOR UPDATE SKIP
  LOCKED`` on PostgreSQL, SQLite's single writer otherwise) and moves each one's
  ``next_reminder_at`` forward with a compare-and-set on "still due": whichever worker commits
  first owns that reminder, a second worker finds nothing due. Nothing slow (provider, Slack)
  runs while rows are locked; a crash after the claim loses one reminder, never doubles one.
* **It never pretends.** Email reminders are the provider's: the bot asks for them
  (``remind_envelope``) only when the provider has the extension and is not already sending
  its own on a cadence (an envelope created with ``reminders``) — otherwise outside people
  would get two emails. The thread reply names exactly who was reminded and how.
* **Expiry is the provider's word.** A request past its ``expires_at`` is announced as expired
  only once the provider reports EXPIRED; until then it is looked at again later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import aiohttp
from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import update
from sqlmodel import Session, col, select

from bot.db import Database, database_unavailable
from bot.provider import Envelope, NotSupported, ProviderClient, ProviderConflict, ProviderError
from bot.provider.models import Recipient
from bot.slack import install, requests, store, views
from bot.slack.models import SignRequest
from bot.timeutil import to_utc, utcnow

log = logging.getLogger("signbot.slack.reminders")

ACTIVE = ("SENT", "DELIVERED", "PARTIALLY_SIGNED")
"""Request statuses in which someone still has to act."""
WAITING = ("SENT", "VIEWED")
"""Recipient statuses that still have to act (invited, not done)."""
ACTING_ROLES = ("SIGNER", "APPROVER")
BATCH = 100
CONCURRENCY = 8
"""Claimed requests followed up at once (each is a provider GET and a few Slack calls)."""
EXPIRY_RECHECK = timedelta(minutes=5)
"""How long to wait before asking the provider again about a request past its expiry that the
provider does not call EXPIRED yet (its clock runs on its own schedule)."""
SLACK_ERRORS = (SlackClientError, aiohttp.ClientError, TimeoutError)


def next_due(row: SignRequest, now: datetime) -> datetime | None:
    """When the job must next look at ``row``: its next reminder, or its expiry (rechecked
    after :data:`EXPIRY_RECHECK` once past), whichever comes first; None when neither.

    The code that sends a request sets ``next_reminder_at = next_due(row, sent_at)``.
    """
    return _next(row, now, row.reminders_sent)


def _next(row: SignRequest, now: datetime, sent: int) -> datetime | None:
    due: list[datetime] = []
    if row.reminder_interval_days > 0 and sent < row.reminder_max_count:
        due.append(now + timedelta(days=row.reminder_interval_days))
    if row.expires_at is not None:
        expires = to_utc(row.expires_at)
        due.append(expires if expires > now else now + EXPIRY_RECHECK)
    return min(due, default=None)


@dataclass(frozen=True)
class Claim:
    """One piece of work this worker owns: reminder ``number`` of a request, or an expiry check."""

    request: SignRequest
    """The row as it was read (detached): where to post, who to remind."""
    kind: Literal["remind", "expiry"]
    number: int = 0


def due_query(now: datetime, limit: int = BATCH) -> Any:
    """The requests due a look, through the index on ``next_reminder_at`` (``bench/scale.py``
    EXPLAINs this very query)."""
    return (
        select(SignRequest)
        .where(col(SignRequest.next_reminder_at) <= now)
        .order_by(col(SignRequest.next_reminder_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def claim(session: Session, now: datetime, limit: int = BATCH) -> list[Claim]:
    """Claim the due requests in the caller's transaction (see the module's docstring)."""
    rows = session.exec(due_query(now, limit)).all()
    claims: list[Claim] = []
    for row in rows:
        values: dict[str, Any] = {}
        found: Claim | None = None
        expired = row.expires_at is not None and to_utc(row.expires_at) <= now
        if row.status not in ACTIVE or not row.envelope_id:
            values["next_reminder_at"] = None  # finished meanwhile: out of the index range
        elif expired:
            found = Claim(row, "expiry")
            values["next_reminder_at"] = next_due(row, now)
        elif row.reminder_interval_days > 0 and row.reminders_sent < row.reminder_max_count:
            number = row.reminders_sent + 1
            found = Claim(row, "remind", number)
            values["reminders_sent"] = number
            values["next_reminder_at"] = _next(row, now, number)
        else:
            values["next_reminder_at"] = next_due(row, now)
        result = session.exec(  # type: ignore[call-overload]
            update(SignRequest)
            .where(col(SignRequest.id) == row.id, col(SignRequest.next_reminder_at) <= now)
            .values(**values, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1 and found is not None:
            claims.append(found)
    session.expunge_all()  # handed out detached: read-only snapshots
    return claims


def _merge(row: SignRequest, envelope: Envelope) -> None:
    """The provider's statuses (and expiry) into the row, keeping what only the bot knows of
    each recipient (``slack_user_id``, ``sign_url_sealed``, ``dm_sent``…)."""
    theirs = {r.email.lower(): r for r in envelope.recipients}
    merged = []
    for known in row.recipients:
        recipient = theirs.get(str(known.get("email", "")).lower())
        if recipient is not None:
            known = {**known, "status": recipient.status or known.get("status")}
            known["role"] = recipient.role or known.get("role")
        merged.append(known)
    row.recipients = merged
    if envelope.expires_at is not None:
        row.expires_at = envelope.expires_at
    if envelope.status in ACTIVE:
        row.status = envelope.status
    row.updated_at = utcnow()


_current: ContextVar[AsyncWebClient | None] = ContextVar("slack_reminders_client", default=None)
"""The Slack client of the request a task of :meth:`SlackReminders.tick` is following."""


class SlackReminders:
    """The reminder and expiry job of the bot: :meth:`tick` does one pass."""

    def __init__(
        self,
        db: Database,
        provider: ProviderClient,
        client: AsyncWebClient | Callable[[str], Awaitable[AsyncWebClient | None]],
        clock: Callable[[], datetime] = utcnow,
        *,
        unseal: Callable[[str], str] | None = None,
    ) -> None:
        """``unseal`` opens a recipient's stored ``sign_url_sealed`` (the deployment's
        ``SecretBox.open``); without it, or when it fails, the DM points to the email."""
        self.db = db
        self.provider = provider
        # one client (a token) or, with OAuth installs, a lookup of each workspace's client
        self._fixed = client if isinstance(client, AsyncWebClient) else None
        self._lookup = None if isinstance(client, AsyncWebClient) else client
        self.clock = clock
        self.unseal = unseal

    async def tick(self) -> int:
        """Claim what is due, then follow each claim up; returns how many were claimed.
        Failures after the claim are logged per request; only the claim itself can raise."""
        now = self.clock()
        claims = await self.db.run(lambda s: claim(s, now))
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(found: Claim) -> None:
            async with gate:
                try:
                    client = await self._client_of(found.request.team_id)
                    _current.set(client)  # this task's own context: concurrent rows differ
                    await self._follow(found, now)
                except Exception:  # one request's trouble must not stop the others
                    log.exception("request %s: follow-up failed", found.request.id)

        await asyncio.gather(*(one(c) for c in claims))
        return len(claims)

    async def _follow(self, found: Claim, now: datetime) -> None:
        row = found.request
        envelope = await self._envelope(row)
        # an uninstalled workspace hears nothing (install.py): the row still keeps up, and
        # what fell due meanwhile is skipped, not replayed on return
        quiet = await install.silenced(self.db, row.team_id) or _current.get() is None
        if envelope is not None and envelope.status == "EXPIRED":
            await record_expiry(self.db, self.client, row.id, envelope, announce=not quiet)
            return
        if envelope is not None and envelope.is_finished:
            await self.db.run(lambda s: self._record(s, row.id, envelope, now, finished=True))
            return
        if envelope is not None:
            row = await self.db.run(lambda s: self._record(s, row.id, envelope, now)) or row
        if found.kind == "expiry":
            log.info("request %s is past its expiry; the provider does not say so yet", row.id)
        elif quiet:
            log.info(
                "request %s: reminder #%d skipped, workspace uninstalled", row.id, found.number
            )
        else:
            await self._remind(row, found.number, envelope)

    async def _envelope(self, row: SignRequest) -> Envelope | None:
        try:
            return await self.provider.get_envelope(row.envelope_id or "")
        except ProviderError as exc:
            log.warning("request %s: could not refresh from the provider: %s", row.id, exc)
            return None

    @staticmethod
    def _record(
        session: Session, request_id: str, envelope: Envelope, now: datetime, finished: bool = False
    ) -> SignRequest | None:
        """The provider's view into the row; a finished envelope leaves the job's scan."""
        row = session.get(SignRequest, request_id)
        if row is None:
            return None
        _merge(row, envelope)
        if finished:
            row.status = envelope.status
            row.next_reminder_at = None
        elif row.next_reminder_at is not None:
            row.next_reminder_at = next_due(row, now)  # the provider may have moved the expiry
        session.add(row)
        return row

    # ------------------------------------------------------------ reminders

    async def _remind(self, row: SignRequest, number: int, envelope: Envelope | None) -> None:
        members = [
            r
            for r in row.recipients
            if r.get("slack_user_id")
            and r.get("status") in WAITING
            and (r.get("role") or "SIGNER") in ACTING_ROLES
        ]
        dm_sent = [r for r in members if await self._dm(row, r)]
        emailed = await self._email(row, number, envelope)
        member_emails = {
            str(r.get("email", "")).lower() for r in row.recipients if r.get("slack_user_id")
        }
        outside = [r for r in emailed if r.email.lower() not in member_emails]
        who = [f"{views.user_ref(r['slack_user_id'])} (Slack)" for r in dm_sent]
        who += [f"{views.user_ref(None, r.name or r.email)} (email)" for r in outside]
        if not who:
            log.info("request %s: reminder #%d reached nobody", row.id, number)
            return
        if row.message_ts:
            listed = ", ".join(who[:-1]) + f" and {who[-1]}" if len(who) > 1 else who[0]
            await self._post(row, f"🔔 Reminder #{number} sent to {listed}.")

    async def _dm(self, row: SignRequest, recipient: dict[str, Any]) -> bool:
        """A reminder DM with the sign button when the bot knows the link, else words."""
        url = self._sign_url(recipient)
        try:
            message = views.signer_dm(
                subject=row.subject,
                sign_url=url or "",
                requester_id=row.requester_id,
                expires_at=row.expires_at,
                reminder=True,
            )
        except ValueError:
            message = _dm_without_link(row, recipient)
        try:
            await self.client.chat_postMessage(channel=recipient["slack_user_id"], **message)
        except SLACK_ERRORS as exc:
            log.warning("request %s: reminder DM failed: %s", row.id, exc)
            return False
        return True

    def _sign_url(self, recipient: dict[str, Any]) -> str | None:
        sealed = recipient.get("sign_url_sealed")
        if not sealed or self.unseal is None:
            return None
        try:
            return self.unseal(sealed)
        except Exception:  # a rotated deployment secret: the link is simply unknown now
            log.warning("a stored sign link could not be opened")
            return None

    async def _email(
        self, row: SignRequest, number: int, envelope: Envelope | None
    ) -> list[Recipient]:
        """The provider's email reminder, when it has one to give; who it reached."""
        if envelope is None:
            return []
        if envelope.reminders is not None and envelope.reminders.interval_days > 0:
            log.info("request %s: the provider emails reminders on its own cadence", row.id)
            return []
        try:
            if not (await self.provider.capabilities()).remind:
                log.info(
                    "request %s: the provider has no remind extension; people outside Slack "
                    "get no email reminder",
                    row.id,
                )
                return []
            answer = await self.provider.remind_envelope(
                envelope.id, idempotency_key=f"{row.id}-remind-{number}"
            )
        except NotSupported as exc:
            log.info("request %s: %s", row.id, exc)
            return []
        except ProviderConflict as exc:  # nobody waiting, or finished meanwhile
            log.info("request %s: no email reminder: %s", row.id, exc)
            return []
        except ProviderError as exc:
            log.warning("request %s: the provider's reminder failed: %s", row.id, exc)
            return []
        return answer.reminded

    async def _client_of(self, team_id: str) -> AsyncWebClient | None:
        if self._lookup is not None:
            return await self._lookup(team_id)
        return self._fixed

    @property
    def client(self) -> AsyncWebClient:
        """The Slack client of the request being followed (set per task in :meth:`tick`)."""
        found = _current.get() or self._fixed
        assert found is not None, "no Slack client for this workspace"
        return found

    async def follow_expiry(self, request_id: str, envelope: Envelope) -> bool:
        """:func:`record_expiry` with this job's database and Slack client."""
        return await record_expiry(self.db, self.client, request_id, envelope)

    async def _post(self, row: SignRequest, text: str) -> None:
        await _reply(self.client, row, text)


def mark_expired(session: Session, request_id: str, envelope: Envelope) -> SignRequest | None:
    """Record that the provider expired the request's envelope, in the caller's transaction:
    the row, or None when it had already left the in-progress statuses (someone else recorded
    the expiry, or it finished): only the caller that gets the row announces it."""
    result = session.exec(  # type: ignore[call-overload]
        update(SignRequest)
        .where(col(SignRequest.id) == request_id, col(SignRequest.status).in_(ACTIVE))
        .values(status="EXPIRED", next_reminder_at=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    row = session.get(SignRequest, request_id)
    assert row is not None
    session.refresh(row)
    _merge(row, envelope)
    row.status = "EXPIRED"
    session.add(row)
    return row


def expiry_notices(row: SignRequest) -> tuple[str, str]:
    """What the thread and the requester are told of an expiry."""
    line = views.status_line(requests.view_of(row, can_remind=False, can_cancel=False))
    subject = views.safe(row.subject, 300)
    return (
        f"{line}; nobody can sign it any more.",
        f"Request #{row.number} ({subject}): {line}.",
    )


async def record_expiry(
    db: Database,
    client: AsyncWebClient,
    request_id: str,
    envelope: Envelope,
    *,
    announce: bool = True,
) -> bool:
    """Record that the provider expired the request's envelope and announce it (status
    message, thread, requester's DM) — once: False, and nothing said, when the row had already
    left the in-progress statuses (see :func:`mark_expired`; the webhook route marks it in
    the transaction that queues its notices). ``announce=False``: recorded only."""
    row = await db.run(lambda s: mark_expired(s, request_id, envelope))
    if row is None:
        return False
    if not announce:
        return True
    view = requests.view_of(row, can_remind=False, can_cancel=False)
    thread, dm = expiry_notices(row)
    if row.message_ts:
        try:
            message = views.status_message(view)
            await client.chat_update(channel=row.channel_id, ts=row.message_ts, **message)
        except SLACK_ERRORS as exc:
            log.warning("request %s: status message not updated: %s", row.id, exc)
        await _reply(client, row, thread)
    try:
        await client.chat_postMessage(channel=row.requester_id, text=dm)
    except SLACK_ERRORS as exc:
        log.warning("request %s: expiry DM to the requester failed: %s", row.id, exc)
    return True


async def _reply(client: AsyncWebClient, row: SignRequest, text: str) -> None:
    """A reply in the status message's thread; a refusal is logged (the row is the truth)."""
    try:
        await client.chat_postMessage(channel=row.channel_id, thread_ts=row.message_ts, text=text)
    except SLACK_ERRORS as exc:
        log.warning("request %s: thread reply failed: %s", row.id, exc)


def _dm_without_link(row: SignRequest, recipient: dict[str, Any]) -> dict[str, Any]:
    """The reminder when the bot does not know the signing link (the provider gives it only
    when the envelope is sent): the email holds it."""
    who = views.user_ref(row.requester_id, "Someone")
    subject = views.safe(row.subject, views.SUBJECT_MAX + 40)
    email = views.safe(str(recipient.get("email") or "your address"), 254)
    text = (
        f"Reminder: {who} asks you to sign *{subject}*.\n"
        f"Use the link in the invitation email sent to {email}."
    )
    block = {"type": "section", "block_id": "invite", "text": views.md(text)}
    return {"text": views.truncate(f"Reminder: please sign {subject}", 3000), "blocks": [block]}


def schedule_housekeeping(scheduler: AsyncIOScheduler, db: Database) -> Job:
    """Hourly, forget webhook deliveries older than :data:`store.SEEN_RETENTION` (the table
    of seen deliveries would otherwise grow with every event). Any replica may run it: the
    delete is idempotent."""

    async def slack_housekeeping() -> None:
        try:
            gone = await db.run(store.forget_old_deliveries)
        except Exception as exc:
            if not database_unavailable(exc):
                log.exception("forgetting old webhook deliveries failed; retrying in an hour")
            else:  # an outage is logged by the worker already: one line here, no traceback
                log.warning("old webhook deliveries not forgotten (database down); next hour")
            return
        if gone:
            log.info("forgot %d webhook deliveries older than %s", gone, store.SEEN_RETENTION)

    return scheduler.add_job(
        slack_housekeeping,
        "interval",
        hours=1,
        id="slack_housekeeping",
        next_run_time=datetime.now(UTC) + timedelta(minutes=1),  # not an hour: see the worker
        replace_existing=True,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )


def schedule(scheduler: AsyncIOScheduler, reminders: SlackReminders, every_seconds: float) -> Job:
    """Run :meth:`SlackReminders.tick` every ``every_seconds`` on ``scheduler``'s loop: alone
    (a slow pass is not overlapped by the next), late runs coalesced, a failure logged and
    retried on the next tick (it never stops the job). Works before or after ``start()``."""

    async def slack_reminders() -> None:
        try:
            await reminders.tick()
        except Exception:
            log.exception("the Slack reminder pass failed; retrying on the next tick")

    return scheduler.add_job(
        slack_reminders,
        "interval",
        seconds=every_seconds,
        id="slack_reminders",
        replace_existing=True,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )
