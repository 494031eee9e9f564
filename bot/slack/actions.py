"""Remind and Cancel: the status message's buttons and ``/sign remind|cancel`` share these.

Only the requester (or the approver) may act on a request. Where the provider lacks the
extension (``remind``, ``void`` — the hosted Certyneo has neither) the buttons are not shown
and the commands say so plainly; the bot never pretends it reminded or cancelled anyone.
A request still awaiting approval is a draft: cancelling it deletes the draft (core API).

Each operation returns the ephemeral answer for the person who asked (``views.ephemeral``
payloads), so a button click and a command answer alike.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.provider.errors import NotSupported, ProviderConflict, ProviderError, ProviderNotFound
from bot.slack import approvals, ids, notices, requests, store, views
from bot.slack.core import Core, team_of, user_of
from bot.slack.models import SignRequest
from bot.timeutil import utcnow

log = logging.getLogger("signbot.slack")

NO_REMIND = "This signing service does not support reminders; signbot did not remind anyone."
NO_VOID = (
    "This signing service does not support cancelling a request that was sent; signbot did "
    "not cancel anything. Ask the signers to ignore it, or let it expire."
)
CANCELLABLE = requests.ACTIVE | {"RETURNED_TO_SENDER"}

Answer = dict[str, Any]


def may_act(row: SignRequest, user_id: str) -> bool:
    return bool(user_id) and user_id in (row.requester_id, row.approver_id)


def _word(status: str) -> str:
    return status.replace("_", " ").lower()


def _refusal(row: SignRequest, what: str) -> Answer:
    return views.ephemeral(
        f":no_entry: Only the requester <@{row.requester_id}> or the approver can {what} "
        f"request #{row.number}."
        if ids.is_slack_id(row.requester_id)
        else f":no_entry: Only the requester or the approver can {what} request #{row.number}."
    )


async def remind(core: Core, row: SignRequest, user_id: str) -> Answer:
    """Remind everyone who still has to sign: by email through the provider's ``remind``
    extension, and by DM for members."""
    if not may_act(row, user_id):
        return _refusal(row, "send reminders for")
    if not (await core.caps()).remind:
        return views.ephemeral_error(NO_REMIND)
    if row.status not in requests.ACTIVE or not row.envelope_id:
        return views.ephemeral_error(
            f"Request #{row.number} is {_word(row.status)}: there is nobody to remind."
        )
    try:
        reminded = await core.provider.remind_envelope(row.envelope_id)
    except NotSupported:
        return views.ephemeral_error(NO_REMIND)
    except ProviderConflict as exc:
        return views.ephemeral_error(f"Nobody was reminded: {exc.detail or exc}")
    except ProviderError as exc:
        return views.ephemeral_error(f"signbot could not send the reminders: {exc}")
    count = len(reminded.reminded)
    dms = await notices.remind_signers(core, row)
    people = "person" if count == 1 else "people"
    by_dm = f" ({dms} of them by Slack DM too)" if dms else ""
    return views.ephemeral(f"🔔 Reminded {count} {people} by email{by_dm}.")


async def cancel(core: Core, row: SignRequest, user_id: str, reason: str | None) -> Answer:
    """Cancel: a draft awaiting approval is deleted, a sent envelope voided (extension)."""
    if not may_act(row, user_id):
        return _refusal(row, "cancel")
    if row.status in views.FINISHED:
        return views.ephemeral_error(
            f"Request #{row.number} is already {_word(row.status)}; there is nothing to cancel."
        )
    if row.status == "AWAITING_APPROVAL":
        return await _drop_draft(core, row, user_id, reason)
    if row.status not in CANCELLABLE or not row.envelope_id:
        return views.ephemeral_error(
            f"Request #{row.number} cannot be cancelled while it is {_word(row.status)}."
        )
    if not (await core.caps()).void:
        return views.ephemeral_error(NO_VOID)
    try:
        envelope = await core.provider.void_envelope(
            row.envelope_id, reason, idempotency_key=f"{row.id}-void"
        )
    except NotSupported:
        return views.ephemeral_error(NO_VOID)
    except ProviderConflict as exc:
        return views.ephemeral_error(
            f"Request #{row.number} was not cancelled: {exc.detail or exc}"
        )
    except ProviderError as exc:
        return views.ephemeral_error(f"signbot could not cancel request #{row.number}: {exc}")

    def voided(r: SignRequest) -> None:
        requests.absorb(r, envelope)
        store.touch(r, decision_reason=(reason or None), decided_at=utcnow())

    row, _ = await core.change(row.id, voided)
    return await _cancelled(core, row, user_id, reason)


async def _drop_draft(core: Core, row: SignRequest, user_id: str, reason: str | None) -> Answer:
    row, claimed = await core.change(row.id, approvals.claim)
    if not claimed:
        return views.ephemeral_error(f"Request #{row.number} is being decided right now.")
    try:
        await core.provider.delete_envelope(row.envelope_id or "")
    except ProviderNotFound:
        pass
    except ProviderError as exc:
        await core.change(row.id, approvals.release)
        return views.ephemeral_error(f"signbot could not cancel request #{row.number}: {exc}")

    def dropped(r: SignRequest) -> bool:
        if r.status != "AWAITING_APPROVAL":
            return False
        store.touch(r, status="VOIDED", decision_reason=(reason or None), decided_at=utcnow())
        return True

    row, done = await core.change(row.id, dropped)
    if not done:
        return views.ephemeral_error(f"Request #{row.number} was decided meanwhile.")
    if row.approver_id and row.approver_id != user_id:
        await core.dm(
            row.approver_id,
            text=f"Request #{row.number} (*{views.safe(row.subject, 300)}*) was cancelled by "
            f"<@{user_id}>: it needs no approval any more.",
        )
    return await _cancelled(core, row, user_id, reason)


async def _cancelled(core: Core, row: SignRequest, user_id: str, reason: str | None) -> Answer:
    await core.refresh_status(row)
    because = f"\n{views.quote(reason, 1000)}" if reason else ""
    await core.thread(row, f"🚫 <@{user_id}> cancelled the request.{because}")
    if user_id != row.requester_id:
        await core.dm(
            row.requester_id,
            text=f"🚫 <@{user_id}> cancelled request #{row.number} "
            f"(*{views.safe(row.subject, 300)}*).{because}",
        )
    return views.ephemeral(f"🚫 Request #{row.number} is cancelled: nobody can sign it any more.")


# ------------------------------------------------------------------ the buttons


async def _clicked_row(core: Core, body: dict[str, Any]) -> SignRequest | None:
    request_id = ((body.get("actions") or [{}])[0]).get("value")
    row = await core.load(request_id) if request_id else None
    return row if row is not None and row.team_id == team_of(body) else None


def register(app: AsyncApp, core: Core) -> None:
    @app.action(ids.REMIND_ACTION)
    async def on_remind(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        row = await _clicked_row(core, body)
        if row is None:
            answer = views.ephemeral_error("That request no longer exists.")
        else:
            answer = await remind(core, row, user_of(body))
        await core.reply(body, respond, answer)

    @app.action(ids.CANCEL_ACTION)
    async def on_cancel(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        row = await _clicked_row(core, body)
        if row is None:
            answer = views.ephemeral_error("That request no longer exists.")
        else:
            answer = await cancel(core, row, user_of(body), None)
        await core.reply(body, respond, answer)

    @app.action(ids.SIGN_LINK_ACTION)
    async def on_sign_link(ack: Any) -> None:
        """A URL button: Slack opens the link itself and still tells the app; nothing to do."""
        await ack()
