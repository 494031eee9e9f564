"""The Slack bot: a Bolt ``AsyncApp`` in HTTP mode at ``/slack/events``, and the webhook route
``/hooks/esign`` through which it hears from the signing service.

This module is the wiring: the handlers live beside it — :mod:`~bot.slack.modal` (the
``/sign`` modal and its submission), :mod:`~bot.slack.commands` (``/sign`` verbs),
:mod:`~bot.slack.approvals` (Approve / Reject), :mod:`~bot.slack.actions` (Remind / Cancel),
:mod:`~bot.slack.home` (App Home), :mod:`~bot.slack.notices` (what webhooks make the bot say)
and :mod:`~bot.slack.install` (uninstall and reinstall). Handlers acknowledge first and work
after (Slack allows 3 s; modals open within the trigger's window). The bot is a client of a
Certyneo-compatible API through ``bot.provider`` only; what it knows lives in its own tables
(``bot.slack.models``).

One workspace by token, or many by OAuth (:mod:`~bot.slack.oauth`: ``/slack/install`` and
``/slack/oauth_redirect``, installs kept in the database). Either way Bolt authorizes each
request for its workspace and the handlers' Slack calls use that workspace's client
(:class:`~bot.slack.core.Core`); the webhook route uses the client of the request row's
``team_id``. The Web API is reached at ``api_url`` (``SLACK_API_URL``) in both modes, the
OAuth exchange (``oauth.v2.access``) included.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.db import Database
from bot.jobs.tasks import Kind
from bot.provider import ProviderClient
from bot.provider.errors import ProviderError, ProviderNotFound
from bot.provider.webhooks import WebhookSignatureError, verify
from bot.slack import actions, approvals, home, install, notices, store
from bot.slack.commands import Commands
from bot.slack.core import Core
from bot.slack.modal import Modal
from bot.slack.oauth import (
    FromInstallations,
    Installations,
    OAuthConfig,
    OAuthStates,
    SingleToken,
    oauth_settings,
)
from bot.slack.webclient import web_client

log = logging.getLogger("signbot.slack")

#: Longer than registering takes; a replica that dies holding it lets the others in after.
REGISTRATION_LOCK = timedelta(seconds=60)

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


class SlackBot:
    def __init__(
        self,
        *,
        db: Database,
        provider: ProviderClient,
        signing_secret: str,
        api_url: str,
        hook_url: str,
        seal: Callable[[str], str],
        unseal: Callable[[str], str],
        bot_token: str | None = None,
        oauth: OAuthConfig | None = None,
        templates_dir: Path | None = None,
    ) -> None:
        """One workspace with ``bot_token``, or many installed through ``oauth``."""
        if (bot_token is None) == (oauth is None):
            raise ValueError("give either a bot token or OAuth settings")
        self.db = db
        self.provider = provider
        self.hook_url = hook_url
        self.seal, self.unseal = seal, unseal
        # Tokenless: each request's client gets its workspace's token from ``authorize``.
        base = web_client(base_url=api_url)
        self.installations: Installations | None = None
        self.client: AsyncWebClient | None = None
        """The single workspace's client (token mode)."""
        if oauth is not None:
            self.installations = Installations(db, seal=seal, unseal=unseal, api_url=api_url)
            self.app = AsyncApp(
                signing_secret=signing_secret,
                client=base,
                authorize=FromInstallations(self.installations),
                oauth_settings=oauth_settings(oauth, self.installations, OAuthStates(db)),
                user_facing_authorize_error_message=(
                    "signbot is not installed in this workspace (any more): "
                    "ask an admin to install it again."
                ),
            )
        else:
            self.client = web_client(token=bot_token, base_url=api_url)
            self.app = AsyncApp(
                signing_secret=signing_secret, client=base, authorize=SingleToken(self.client)
            )
        self.handler = AsyncSlackRequestHandler(self.app)
        self.core = Core(
            db=db,
            provider=provider,
            client_for=self.client_for,
            default_client=self.client,
            seal=seal,
            unseal=unseal,
        )
        self.modal = Modal(self.core, templates_dir)
        self.commands = Commands(self.core, self.modal)
        self._register()

    @property
    def multi_workspace(self) -> bool:
        return self.installations is not None

    async def client_for(self, team_id: str) -> AsyncWebClient | None:
        """The Web API client of a workspace, for work that is not a request from Slack
        (webhook notices, reminders): its installed bot token (OAuth), or the one token. None
        when signbot is not installed there (never, or uninstalled: OAuth only; in token mode
        ask :func:`~bot.slack.install.silenced` too)."""
        if self.installations is not None:
            return await self.installations.client(team_id)
        return self.client

    def _register(self) -> None:
        app, core = self.app, self.core
        app.middleware(core.bind_request)  # first: every handler's Slack calls need it
        install.register(app, self.db)  # its middleware notices a reinstall
        app.command("/sign")(self.commands.handle)
        self.modal.register(app)
        approvals.register(app, core)
        actions.register(app, core)
        home.register(app, core)

    # ------------------------------------------------------------ provider side

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
        # Replicas start together: one registers, the others wait for its secret (else each
        # would register its own subscription and every event would come twice).
        token = secrets.token_hex(8)
        if not await store.try_lock(self.db, "webhook-registration", token, REGISTRATION_LOCK):
            raise ProviderError("another replica is registering the webhook")
        try:
            await self._register_unless_known()
        finally:
            await self.db.run(lambda s: store.unlock(s, "webhook-registration", token))

    async def _register_unless_known(self) -> None:
        known = await self.db.run(lambda s: s.get(store.BotSetting, "webhook_secret"))
        try:
            listed = await self.provider.list_webhooks()
        except ProviderNotFound:  # a provider that cannot list subscriptions (Certyneo's own)
            listed = None
        existing = [w for w in listed or [] if w.url == self.hook_url]
        if known is not None:
            if listed is None or any(w.is_active for w in existing):
                return
            # the provider lost it or disabled it (days of failures): register again
            log.warning("the bot's webhook is gone or disabled at the provider; registering again")
        for webhook in existing:  # its secret is unknown (or it is disabled): replace it
            await self.provider.delete_webhook(webhook.id)
        created = await self.provider.create_webhook(self.hook_url, EVENTS)
        assert created.secret
        sealed = self.seal(created.secret)
        await self.db.run(lambda s: store.put_setting(s, "webhook_secret", sealed))
        log.info("registered the bot's webhook %s at the provider", created.id)

    # ------------------------------------------------------------ notices

    def task_kinds(self, lease: timedelta) -> dict[str, Kind]:
        """The bot's background tasks, for the deployment's worker: its queued posts.

        Retried with the tasks' backoff (5 s, 20 s, … then hourly) for about nine hours of
        Slack trouble before one is given up (logged); two run at once per worker, so one
        large PDF upload does not hold every other workspace's notices."""
        poster = notices.Poster(self.core)
        return {notices.KIND: Kind(poster, max_attempts=15, lease=lease, concurrency=2)}

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
        event_id = str(event.get("id") or "")[:64]
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        envelope_id = event.get("envelope_id") or data.get("envelopeId")
        if not event_id or not isinstance(envelope_id, str) or not envelope_id:
            return JSONResponse({"error": "not an envelope event"}, status_code=400)
        row = await self.db.run(lambda s: store.by_envelope(s, envelope_id))
        if row is None:
            # not one of the bot's requests (an envelope made through the API with the same
            # account): acknowledged, nothing to do
            return {"ok": True, "ignored": True}
        # Claimed before the work. A redelivery of a handled event is acknowledged; one that
        # arrives while another replica is still on it is asked to come back, so that the
        # event survives that replica dying mid-way (its claim runs out).
        token = secrets.token_hex(8)
        claimed = await store.claim(self.db, event_id, token)
        if claimed == "done":
            return {"duplicate": True}
        if claimed == "busy":  # 503, not 4xx: senders retry a 5xx, and some drop a 4xx
            return JSONResponse(
                {"error": "this event is being handled; retry later"},
                status_code=503,
                headers={"Retry-After": "30"},
            )
        name = str(event.get("event") or event.get("type"))
        keeper = asyncio.create_task(self._keep_claim(event_id, token))
        try:
            silenced = await install.silenced(self.db, row.team_id)
            quiet = silenced or await self.client_for(row.team_id) is None
            # the posts are queued, and the delivery marked handled, in one transaction
            await notices.follow(
                self.core, row, name, data, delivery=(event_id, token), quiet=quiet
            )
        except Exception:
            keeper.cancel()
            # given back: the provider's retry does it again
            await self.db.run(lambda s: store.release_delivery(s, event_id, token))
            log.exception(
                "webhook %s for request %s failed; the provider will retry", event_id, row.id
            )
            return JSONResponse({"error": "could not handle the event yet"}, status_code=503)
        finally:
            keeper.cancel()
        return {"ok": True}

    async def _keep_claim(self, event_id: str, token: str) -> None:
        """Renew the claim on a delivery while it is handled (a slow provider answering the
        envelope's state, with its retries), so that no other replica handles it meanwhile."""
        every = store.DELIVERY_CLAIM.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            try:
                if not await self.db.run(lambda s: store.renew_delivery(s, event_id, token)):
                    return
            except Exception:  # the database may be restarting: try again next time
                log.warning("could not renew the claim on webhook %s", event_id, exc_info=True)
