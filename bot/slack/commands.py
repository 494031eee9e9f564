"""``/sign`` and its verbs: open the modal, ``list``, ``status ID``, ``remind ID``,
``cancel ID [reason]``, ``help``.

``ID`` is the short number shown in the channel (``#12`` or ``12``) or the envelope id, looked
up within the workspace the command came from. Everything answers ephemerally. Who may do
what: ``status`` shows a request to its requester, its approver and its member recipients;
``remind`` and ``cancel`` are for the requester or the approver (see :mod:`bot.slack.actions`).
"""

from __future__ import annotations

import logging
from typing import Any

from bot.provider.errors import ProviderError
from bot.slack import actions, requests, store, views
from bot.slack.core import Core
from bot.slack.modal import Modal
from bot.slack.models import SignRequest
from bot.slack.parsing import Command, parse_command

log = logging.getLogger("signbot.slack")


class Commands:
    def __init__(self, core: Core, modal: Modal) -> None:
        self.core, self.modal = core, modal

    async def handle(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        parsed = parse_command(command.get("text"))
        if parsed.action == "help" or parsed.error:
            text = views.help_text()
            if parsed.error:
                text = f":warning: {views.safe(parsed.error, 500)}\n\n{text}"
            await ack(response_type="ephemeral", text=text)
            return
        await ack()
        team_id, user_id = command.get("team_id", ""), command["user_id"]
        if parsed.action == "open":
            await self.modal.open(command, parsed.template)
            return
        if parsed.action == "list":
            answer = await self._list(team_id, user_id)
        else:
            answer = await self._about(parsed, team_id, user_id)
        await respond(**answer)

    async def _list(self, team_id: str, user_id: str) -> dict[str, Any]:
        rows = await self.core.db.run(lambda s: store.mine(s, team_id, user_id))
        return views.list_message([await self.core.view(r) for r in rows])

    async def _about(self, parsed: Command, team_id: str, user_id: str) -> dict[str, Any]:
        """``status``, ``remind`` or ``cancel`` of one request."""
        ref = str(parsed.ref)
        row = await self.core.find(team_id, ref) if parsed.ref else None
        if row is None:
            return views.ephemeral_error(
                f"There is no request {ref} in this workspace. `/sign list` shows yours."
            )
        if parsed.action == "remind":
            return await actions.remind(self.core, row, user_id)
        if parsed.action == "cancel":
            return await actions.cancel(self.core, row, user_id, parsed.reason)
        return await self._status(row, user_id)

    async def _status(self, row: SignRequest, user_id: str) -> dict[str, Any]:
        if not may_see(row, user_id):
            return views.ephemeral_error(
                f"Request #{row.number} is not yours to see: only its requester, its approver "
                "and its recipients can."
            )
        row = await self._fresh(row)
        return {"response_type": "ephemeral", **views.status_message(await self.core.view(row))}

    async def _fresh(self, row: SignRequest) -> SignRequest:
        """The provider's current view when the request is still moving (else as stored)."""
        if not row.envelope_id or row.status in views.FINISHED or row.status == "CREATING":
            return row
        try:
            envelope = await self.core.provider.get_envelope(row.envelope_id)
        except ProviderError as exc:
            log.info("status of %s from the row only: %s", row.id, exc)
            return row
        row, _ = await self.core.change(row.id, lambda r: requests.absorb(r, envelope))
        return row


def may_see(row: SignRequest, user_id: str) -> bool:
    if user_id in (row.requester_id, row.approver_id):
        return True
    return any(r.get("slack_user_id") == user_id for r in row.recipients)
