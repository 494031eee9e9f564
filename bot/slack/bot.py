"""The Slack bot: a Bolt ``AsyncApp`` in HTTP mode at ``/slack/events``, and the webhook route
``/hooks/esign`` through which it hears from the signing service.

Handlers acknowledge first and work after (Slack allows 3 s; the modal opens within the
trigger's window). The bot is a client of a Certyneo-compatible API through
``bot.provider`` only; what it knows lives in its own tables (``bot.slack.models``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.db import Database
from bot.provider import ProviderClient
from bot.provider.errors import ProviderError
from bot.provider.models import Template
from bot.provider.webhooks import WebhookSignatureError, verify
from bot.slack import ids, requests, store, views
from bot.slack.models import SignRequest
from bot.slack.parsing import parse_command, parse_submission

log = logging.getLogger("signbot.slack")

EVENTS = [
    "envelope.sent",
    "envelope.completed",
    "envelope.declined",
    "envelope.voided",
    "envelope.expired",
    "recipient.signed",
    "recipient.approved",
    "recipient.viewed",
]
TEMPLATE_CACHE_SECONDS = 60.0


class SlackBot:
    def __init__(
        self,
        *,
        db: Database,
        provider: ProviderClient,
        signing_secret: str,
        bot_token: str,
        api_url: str,
        hook_url: str,
        seal: Callable[[str], str],
        unseal: Callable[[str], str],
    ) -> None:
        self.db = db
        self.provider = provider
        self.hook_url = hook_url
        self.seal, self.unseal = seal, unseal
        self.client = AsyncWebClient(token=bot_token, base_url=api_url)
        self.app = AsyncApp(signing_secret=signing_secret, client=self.client)
        self.handler = AsyncSlackRequestHandler(self.app)
        self._templates: tuple[float, list[Template]] = (0.0, [])
        self._register()

    # ------------------------------------------------------------ provider side

    async def templates(self) -> list[Template]:
        at, cached = self._templates
        if time.monotonic() - at < TEMPLATE_CACHE_SECONDS:
            return cached
        try:
            found = await asyncio.wait_for(self.provider.all_templates(), timeout=2.0)
        except (ProviderError, TimeoutError):
            log.warning("templates unavailable from the provider; offering uploads only")
            return cached
        self._templates = (time.monotonic(), found)
        return found

    async def ensure_webhook(self, attempts: int = 30) -> None:
        """Register ``/hooks/esign`` with the provider once it answers (it may be this very
        process, which cannot answer itself while starting). Idempotent: the id and the
        sealed secret are kept in the database, shared by every replica."""
        for attempt in range(attempts):
            try:
                await self._ensure_webhook()
                return
            except ProviderError as exc:
                log.info("webhook registration not done yet (%s); retrying", exc)
            await asyncio.sleep(min(2**attempt * 0.5, 30))
        log.error("could not register the bot's webhook with the provider")

    async def _ensure_webhook(self) -> None:
        known = await self.db.run(lambda s: s.get(store.BotSetting, "webhook_secret"))
        if known is not None:
            return
        existing = [w for w in await self.provider.list_webhooks() if w.url == self.hook_url]
        for webhook in existing:  # its secret is unknown: replace it
            await self.provider.delete_webhook(webhook.id)
        created = await self.provider.create_webhook(self.hook_url, EVENTS)
        assert created.secret
        sealed = self.seal(created.secret)
        await self.db.run(lambda s: store.put_setting(s, "webhook_secret", sealed))
        log.info("registered the bot's webhook %s at the provider", created.id)

    # ------------------------------------------------------------ Slack side

    def _register(self) -> None:
        app = self.app
        app.command("/sign")(self._command)
        app.action(ids.TEMPLATE)(self._template_picked)
        app.view(ids.SIGN_CALLBACK)(self._submitted)

    async def _command(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        parsed = parse_command(command.get("text"))
        if parsed.action == "help" or parsed.error:
            await ack(response_type="ephemeral", text=views.help_text())
            return
        await ack()
        team_id, user_id = command.get("team_id", ""), command["user_id"]
        if parsed.action == "open":
            await self._open_modal(command, parsed.template)
        elif parsed.action == "list":
            rows = await self.db.run(lambda s: store.mine(s, team_id, user_id))
            caps = await self.provider.capabilities()
            message = views.list_message(
                [requests.view_of(r, can_remind=caps.remind, can_cancel=caps.void) for r in rows]
            )
            await respond(response_type="ephemeral", **message)
        else:
            await respond(
                response_type="ephemeral",
                text="That command is coming soon; meanwhile use the buttons on the request.",
            )

    async def _open_modal(self, command: dict[str, Any], wanted: str | None) -> None:
        templates = await self.templates()
        chosen = _match(templates, wanted)
        form = _form(templates, chosen, command)
        await self.client.views_open(trigger_id=command["trigger_id"], view=views.sign_modal(form))

    async def _template_picked(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        view = body["view"]
        metadata = ids.ModalMetadata.decode(view.get("private_metadata"))
        selected = body["actions"][0].get("selected_option") or {}
        value = selected.get("value")
        templates = await self.templates()
        chosen = next((t for t in templates if t.id == value), None)
        form = _form(
            templates,
            chosen,
            {"channel_id": metadata.channel_id, "team_id": metadata.team_id},
            response_url=metadata.response_url,
        )
        await self.client.views_update(
            view_id=view["id"], hash=view.get("hash"), view=views.sign_modal(form)
        )

    async def _submitted(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        user_id = body["user"]["id"]
        submission, errors = parse_submission(
            view["state"]["values"], view.get("private_metadata"), user_id
        )
        if errors or submission is None:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        team_id = (body.get("team") or {}).get("id", "")
        try:
            request = await requests.create(
                self.db,
                self.provider,
                self.client,
                team_id=team_id,
                requester_id=user_id,
                submission=submission,
            )
        except (ProviderError, requests.BotError) as exc:
            channel = submission.channel_id or submission.metadata.channel_id or user_id
            await self._tell(channel, user_id, f"signbot could not create the request: {exc}")
            return
        await self._post_status(request)

    # ------------------------------------------------------------ messages

    async def _tell(self, channel: str, user_id: str, text: str) -> None:
        """An ephemeral message to one person; a DM when the channel refuses it."""
        try:
            await self.client.chat_postEphemeral(channel=channel, user=user_id, text=text)
        except SlackApiError:
            await self.client.chat_postMessage(channel=user_id, text=text)

    async def _view(self, request: SignRequest) -> views.RequestView:
        caps = await self.provider.capabilities()
        return requests.view_of(request, can_remind=caps.remind, can_cancel=caps.void)

    async def _post_status(self, request: SignRequest) -> None:
        message = views.status_message(await self._view(request))
        try:
            posted = await self.client.chat_postMessage(channel=request.channel_id, **message)
        except SlackApiError as exc:
            await self._tell(
                request.requester_id,
                request.requester_id,
                f"Request #{request.number} was sent, but signbot cannot post in that channel "
                f"({exc.response.get('error')}); invite it with /invite @signbot.",
            )
            return
        ts, channel = posted["ts"], posted["channel"]

        def keep(session: Any) -> None:
            row = session.get(SignRequest, request.id)
            store.touch(row, message_ts=ts, channel_id=channel)
            session.add(row)

        await self.db.run(keep)

    # ------------------------------------------------------------ notices

    async def hook(self, request: Request) -> Any:
        """``/hooks/esign``: verified, deduplicated, then the channel message follows."""
        raw = await request.body()
        setting = await self.db.run(lambda s: s.get(store.BotSetting, "webhook_secret"))
        if setting is None:
            return JSONResponse({"error": "the bot's webhook is not registered"}, status_code=503)
        try:
            event = verify(raw, request.headers, self.unseal(setting.value))
        except WebhookSignatureError as exc:
            return JSONResponse({"error": str(exc)}, status_code=401)
        event_id = str(event.get("id") or "")
        data = event.get("data") or {}
        envelope_id = event.get("envelope_id") or data.get("envelopeId")
        if not event_id or not envelope_id:
            return JSONResponse({"error": "not an envelope event"}, status_code=400)
        seen = await self.db.run(lambda s: s.get(store.SeenDelivery, event_id))
        if seen is not None:
            return {"duplicate": True}
        row = await self.db.run(lambda s: store.by_envelope(s, envelope_id))
        if row is not None:
            await self._follow(row, str(event.get("event") or event.get("type")), data)
        await self.db.run(lambda s: store.first_time(s, event_id))
        return {"ok": True}

    async def _follow(self, row: SignRequest, name: str, data: dict[str, Any]) -> None:
        envelope = await self.provider.get_envelope(row.envelope_id or "")

        def update(session: Any) -> SignRequest:
            current = session.get(SignRequest, row.id)
            requests.absorb(current, envelope)
            session.add(current)
            return current

        row = await self.db.run(update)
        if row.message_ts:
            message = views.status_message(await self._view(row))
            await self.client.chat_update(channel=row.channel_id, ts=row.message_ts, **message)
        thread = {"channel": row.channel_id, "thread_ts": row.message_ts} if row.message_ts else {}
        who = data.get("name") or data.get("email") or "Someone"
        if name == "recipient.signed" and thread:
            await self.client.chat_postMessage(**thread, text=f"✅ {views.escape(who)} signed.")
        elif name == "recipient.approved" and thread:
            await self.client.chat_postMessage(**thread, text=f"✅ {views.escape(who)} approved.")
        elif name == "envelope.declined":
            reason = data.get("declineReason") or data.get("decline_reason") or ""
            text = f"❌ Declined: {views.escape(str(reason))}" if reason else "❌ Declined."
            if thread:
                await self.client.chat_postMessage(**thread, text=text)
            await self.client.chat_postMessage(
                channel=row.requester_id, text=f"Request #{row.number} was declined. {text}"
            )
        elif name == "envelope.completed":
            pdf = await self.provider.signed_document(row.envelope_id or "")
            await self.client.files_upload_v2(
                channel=row.channel_id,
                thread_ts=row.message_ts,
                content=pdf,
                filename=f"{row.envelope_id}-signed.pdf",
                title=f"{row.subject} (signed)",
                initial_comment="🎉 Everyone has signed. Here is the sealed PDF.",
            )
            await self.client.chat_postMessage(
                channel=row.requester_id,
                text=f"Request #{row.number} ({views.escape(row.subject)}) is complete.",
            )


def _match(templates: list[Template], wanted: str | None) -> Template | None:
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
