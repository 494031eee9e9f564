"""Approval before sending: the approver's DM with Approve / Reject, and what each does.

A request that asks for approval is created at the provider as a DRAFT (nothing is sent, no
invitation exists) and its row is AWAITING_APPROVAL. Only the approver named on the row may
decide; anyone else clicking gets an ephemeral refusal.

* **Approve** → the provider sends the draft → the row absorbs the envelope (and keeps the
  sign links), the status message and the approver's DM show the outcome, the requester is
  told, member signers get their DM.
* **Reject** → a modal asks why (an empty reason is an inline error) → the provider deletes
  the draft → the row is REJECTED with the reason; status message, DM and requester follow.

A decision is claimed on the row (``decided_at`` set while AWAITING_APPROVAL) before the
provider is called, so a double click or Approve and Reject at once decide once; a claim
left by a crash expires after :data:`CLAIM_SECONDS` (the send carries an idempotency key, so
approving again is safe).

The approver's DM is not stored on the row: it is the message the button was clicked in
(``container.channel_id`` / ``message_ts``), which Slack sends with every click and which the
reject modal carries in its ``private_metadata``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.provider.errors import ProviderError, ProviderNotFound
from bot.slack import ids, notices, requests, store, views
from bot.slack.core import Core, team_of, user_of
from bot.slack.models import SignRequest
from bot.slack.parsing import parse_reject
from bot.timeutil import utcnow

log = logging.getLogger("signbot.slack")

AWAITING = "AWAITING_APPROVAL"
CLAIM_SECONDS = 120


async def ask(core: Core, row: SignRequest, message: str | None = None) -> None:
    """The approver's DM with Approve / Reject (the requester hears if it cannot be sent)."""
    if not row.approver_id:
        return
    body = views.approval_dm(await core.view(row, message))
    if await core.dm(row.approver_id, **body) is None:
        await core.dm(
            row.requester_id,
            text=f"signbot could not reach <@{row.approver_id}> by DM to approve request "
            f"#{row.number}; ask them to open signbot's Messages tab.",
        )


def register(app: AsyncApp, core: Core) -> None:
    @app.action(ids.APPROVE_ACTION)
    async def on_approve(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await approve(core, ack, body, respond)

    @app.action(ids.REJECT_ACTION)
    async def on_reject(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await reject(core, ack, body, respond)

    @app.view(ids.REJECT_CALLBACK)
    async def on_rejected(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await rejected(core, ack, body, view)


# ------------------------------------------------------------------ the decision's rules


def _aware(when: datetime | None) -> datetime | None:
    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


def claim(row: SignRequest) -> bool:
    """Take the decision on the locked row; False when it is decided or being decided."""
    held = _aware(row.decided_at)
    if row.status != AWAITING or (held and utcnow() - held < timedelta(seconds=CLAIM_SECONDS)):
        return False
    store.touch(row, decided_at=utcnow())
    return True


def release(row: SignRequest) -> None:
    if row.status == AWAITING:
        store.touch(row, decided_at=None)


async def _decidable(
    core: Core, request_id: str | None, team_id: str, user_id: str
) -> tuple[SignRequest | None, str | None]:
    """The row the approver may decide now, or why not (a sentence for them)."""
    row = await core.load(request_id) if request_id else None
    if row is None or row.team_id != team_id:
        return None, "That request no longer exists."
    if user_id != row.approver_id:
        who = f"<@{row.approver_id}>" if ids.is_slack_id(row.approver_id) else "its approver"
        return None, f"Only {who} can approve or reject request #{row.number}."
    if row.status != AWAITING:
        word = row.status.replace("_", " ").lower()
        return row, f"Request #{row.number} is already decided ({word})."
    return row, None


async def _show_outcome(
    core: Core, where: tuple[str | None, str | None], row: SignRequest, message: str | None
) -> None:
    """The approver's DM re-rendered: the buttons give way to the outcome."""
    channel, ts = where
    if channel and ts:
        body = views.approval_dm(await core.view(row, message))
        await core.call("chat.update", core.client.chat_update, channel=channel, ts=ts, **body)


def _warning(refusal: str | None) -> dict[str, Any]:
    """A refusal from :func:`_decidable` (already safe mrkdwn: it may mention the approver)."""
    return views.ephemeral(f":warning: {refusal or 'That request no longer exists.'}")


def _clicked_in(body: dict[str, Any]) -> tuple[str | None, str | None]:
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    return channel, container.get("message_ts") or (body.get("message") or {}).get("ts")


def _value(body: dict[str, Any]) -> str | None:
    actions = body.get("actions") or [{}]
    return actions[0].get("value")


async def _approver_clicked(
    core: Core, body: dict[str, Any], respond: Any, user_id: str
) -> SignRequest | None:
    """The request an Approve/Reject click is about, when this user may decide it now; else
    the refusal is answered (and a stale DM of the approver's repainted) and None."""
    row, refusal = await _decidable(core, _value(body), team_of(body), user_id)
    if refusal or row is None:
        await core.reply(body, respond, _warning(refusal))
        if row is not None and user_id == row.approver_id:
            await _show_outcome(core, _clicked_in(body), row, None)
        return None
    return row


# ------------------------------------------------------------------ approve


async def approve(core: Core, ack: Any, body: dict[str, Any], respond: Any) -> None:
    await ack()
    user_id = user_of(body)
    row = await _approver_clicked(core, body, respond, user_id)
    if row is None:
        return
    row, claimed = await core.change(row.id, claim)
    if not claimed:
        text = f"Request #{row.number} is being decided already."
        await core.reply(body, respond, _warning(text))
        return
    try:
        envelope = await core.provider.send_envelope(
            row.envelope_id or "", idempotency_key=f"{row.id}-send"
        )
    except ProviderError as exc:
        await core.change(row.id, release)
        text = f"signbot could not send request #{row.number}: {exc}"
        await core.reply(body, respond, views.ephemeral_error(text))
        return

    def sent(r: SignRequest) -> None:
        requests.absorb(r, envelope, core.seal)
        store.touch(r, decided_at=utcnow())
        requests.schedule_reminders(r)

    row, _ = await core.change(row.id, sent)
    await core.refresh_status(row)
    await core.thread(row, f"👍 Approved by <@{user_id}>: sent for signature.")
    await core.dm(
        row.requester_id,
        text=f"👍 <@{user_id}> approved request #{row.number} "
        f"(*{views.safe(row.subject, 300)}*): it is out for signature.",
    )
    await _show_outcome(core, _clicked_in(body), row, envelope.message)
    await notices.invite_signers(core, row, envelope.message)


# ------------------------------------------------------------------ reject


async def reject(core: Core, ack: Any, body: dict[str, Any], respond: Any) -> None:
    """Reject opens the modal that asks why (``views.open`` within the click's trigger)."""
    await ack()
    user_id = user_of(body)
    row = await _approver_clicked(core, body, respond, user_id)
    if row is None:
        return
    modal = views.reject_modal(row.id)
    channel, ts = _clicked_in(body)
    metadata = json.loads(modal["private_metadata"])
    metadata.update({k: v for k, v in (("c", channel), ("ts", ts)) if v})
    modal["private_metadata"] = json.dumps(metadata)
    await core.client.views_open(trigger_id=body["trigger_id"], view=modal)


async def rejected(core: Core, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
    """The reject modal submitted: the draft deleted, the request REJECTED with the reason."""
    metadata_text = view.get("private_metadata")
    request_id, reason, errors = parse_reject(
        (view.get("state") or {}).get("values"), metadata_text
    )
    if errors:
        await ack(response_action="errors", errors=errors)
        return
    await ack()
    user_id = user_of(body)
    try:
        metadata = json.loads(metadata_text or "{}")
    except ValueError:
        metadata = {}
    where = (metadata.get("c"), metadata.get("ts"))
    row, refusal = await _decidable(core, request_id, team_of(body), user_id)
    if refusal or row is None:
        await core.dm(user_id, text=f":warning: {refusal}")
        return
    row, claimed = await core.change(row.id, claim)
    if not claimed:
        await core.dm(user_id, text=f"Request #{row.number} is being decided already.")
        return
    message = None
    try:
        envelope = await core.provider.get_envelope(row.envelope_id or "")
        message = envelope.message
        if envelope.status != "DRAFT":
            raise ProviderError(f"the envelope is {envelope.status.lower()}, not a draft any more")
        await core.provider.delete_envelope(row.envelope_id or "")
    except ProviderNotFound:
        pass  # already gone: nothing was sent, which is what rejecting wants
    except ProviderError as exc:
        await core.change(row.id, release)
        await core.dm(user_id, text=f"signbot could not reject request #{row.number}: {exc}")
        return

    def done(r: SignRequest) -> None:
        store.touch(r, status="REJECTED", decision_reason=reason[:1000], decided_at=utcnow())

    row, _ = await core.change(row.id, done)
    await core.refresh_status(row)
    await core.dm(
        row.requester_id,
        text=f"✋ <@{user_id}> did not approve request #{row.number} "
        f"(*{views.safe(row.subject, 300)}*); nothing was sent.\n{views.quote(reason, 1000)}",
    )
    await _show_outcome(core, where, row, message)
