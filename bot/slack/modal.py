"""The ``/sign`` modal: opening it (a template picked from the command's words), re-rendering
it when the template changes, and its submission.

A valid submission becomes a request (``requests.create``: the provider creates the envelope
and sends it, or holds it as a DRAFT for approval); then the status message is posted, and
either the approver gets the DM with Approve / Reject, or member signers get theirs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.provider.errors import ProviderError
from bot.provider.models import Template
from bot.slack import approvals, ids, notices, requests, template_settings, views
from bot.slack.core import Core, team_of
from bot.slack.parsing import parse_submission

log = logging.getLogger("signbot.slack")

TEMPLATE_CACHE_SECONDS = 60.0


class Modal:
    def __init__(self, core: Core, templates_dir: Path | None = None) -> None:
        self.core = core
        self.templates_dir = templates_dir
        self._templates: tuple[float, list[Template]] = (0.0, [])

    def register(self, app: AsyncApp) -> None:
        app.action(ids.TEMPLATE)(self._template_picked)
        app.view(ids.SIGN_CALLBACK)(self._submitted)

    async def templates(self) -> list[Template]:
        """The provider's templates, cached briefly (the modal must open within 3 s)."""
        at, cached = self._templates
        if time.monotonic() - at < TEMPLATE_CACHE_SECONDS:
            return cached
        try:
            found = await asyncio.wait_for(self.core.provider.all_templates(), timeout=2.0)
        except (ProviderError, TimeoutError):
            log.warning("templates unavailable from the provider; offering uploads only")
            return cached
        self._templates = (time.monotonic(), found)
        return found

    async def open(self, command: dict[str, Any], wanted: str | None) -> None:
        templates = await self.templates()
        chosen = match(templates, wanted)
        form = await self._form(templates, chosen, command)
        await self.core.client.views_open(
            trigger_id=command["trigger_id"], view=views.sign_modal(form)
        )

    async def _template_picked(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        view = body["view"]
        metadata = ids.ModalMetadata.decode(view.get("private_metadata"))
        selected = body["actions"][0].get("selected_option") or {}
        value = selected.get("value")
        templates = await self.templates()
        chosen = next((t for t in templates if t.id == value), None)
        form = await self._form(
            templates,
            chosen,
            {"channel_id": metadata.channel_id, "team_id": metadata.team_id},
            response_url=metadata.response_url,
        )
        await self.core.client.views_update(
            view_id=view["id"], hash=view.get("hash"), view=views.sign_modal(form)
        )

    async def _approval_missing(self, submission: Any) -> bool:
        if not submission.template_id:
            return False
        templates = await self.templates()  # cached: the ack stays quick
        template = next((t for t in templates if t.id == submission.template_id), None)
        required = bool(template and template.approval and template.approval.required)
        return required and not (submission.approval and submission.approver_id)

    async def _form(
        self,
        templates: list[Template],
        chosen: Template | None,
        command: dict[str, Any],
        response_url: str | None = None,
    ) -> views.ModalForm:
        """The form, with the template's ``bot:`` defaults (members, approver, channel) looked
        up in this workspace; what cannot be found stays for the requester to choose."""
        form = _form(templates, chosen, command, response_url)
        if chosen is None:
            return form
        found = await template_settings.resolve(
            self.core.client, template_settings.read(self.templates_dir, chosen.id)
        )
        return dataclasses.replace(
            form,
            members=found.members,
            approver_id=found.approver or form.approver_id,
            channel_id=found.channel or form.channel_id,
        )

    async def _submitted(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        core = self.core
        user_id = body["user"]["id"]
        submission, errors = parse_submission(
            view["state"]["values"], view.get("private_metadata"), user_id
        )
        if errors or submission is None:
            await ack(response_action="errors", errors=errors)
            return
        if await self._approval_missing(submission):
            # the service does not enforce a template's approval: the bot must
            message = "This template requires approval before sending: choose an approver"
            await ack(response_action="errors", errors={ids.APPROVER: message})
            return
        await ack()
        try:
            row = await requests.create(
                core.db,
                core.provider,
                core.client,
                team_id=team_of(body),
                requester_id=user_id,
                submission=submission,
                seal=core.seal,
            )
        except (ProviderError, requests.BotError) as exc:
            channel = submission.channel_id or submission.metadata.channel_id or user_id
            await core.tell(channel, user_id, f"signbot could not create the request: {exc}")
            return
        message = submission.message or None
        row = await core.post_status(row, message)
        if row.status == approvals.AWAITING:
            await approvals.ask(core, row, message)
        else:
            await notices.invite_signers(core, row, message)


def match(templates: list[Template], wanted: str | None) -> Template | None:
    """``/sign nda``: an exact id or slug first, then a name that starts with the word, then
    a slug or name that contains it (``nda`` finds ``tpl_mutual-nda``)."""
    if not wanted:
        return None
    word = wanted.strip().lower()
    slug = {t.id: t.id.lower().removeprefix("tpl_") for t in templates}
    for test in (
        lambda t: t.id.lower() == word or slug[t.id] == word,
        lambda t: t.name.lower().startswith(word),
        lambda t: word in slug[t.id] or word in t.name.lower(),
    ):
        found = next((t for t in templates if test(t)), None)
        if found is not None:
            return found
    return None


def _choice(template: Template) -> views.TemplateChoice:
    reminders = template.reminders
    return views.TemplateChoice(
        id=template.id,
        name=template.name,
        roles=tuple(views.TemplateRole(r.name, r.role) for r in (template.roles or [])),
        subject=template.default_subject,
        message=template.default_message,
        signing_order=template.signing_order,
        remind_days=reminders.interval_days if reminders else None,
        expiry_days=template.expires_in_days,
        approval_required=bool(template.approval and template.approval.required),
        description=template.description,
    )


def _form(
    templates: list[Template],
    chosen: Template | None,
    command: dict[str, Any],
    response_url: str | None = None,
) -> views.ModalForm:
    choice = _choice(chosen) if chosen else None
    return views.ModalForm(
        templates=tuple(_choice(t) for t in templates),
        template_id=chosen.id if chosen else None,
        channel_id=command.get("channel_id"),
        response_url=response_url or command.get("response_url"),
        team_id=command.get("team_id"),
        subject=choice.subject if choice else None,
        message=choice.message if choice else None,
        remind_days=(choice.remind_days if choice and choice.remind_days is not None else 3),
        expiry_days=(choice.expiry_days if choice and choice.expiry_days else 30),
    )
