"""Composing the Slack bot into the app (the composition root's part that knows both sides).

The bot itself imports nothing of the signing service; this module gives it what it needs
from the deployment: the provider's URL and key (by default this deployment's own API and a
live key of the default account, made once and kept sealed in the database so every replica
shares it), a way to seal its webhook secret, and the two HTTP routes it answers.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request

from bot.accounts import service as accounts
from bot.config import Settings
from bot.db import Database
from bot.provider import ProviderClient
from bot.secretbox import SecretBox
from bot.slack import store
from bot.slack.bot import SlackBot

log = logging.getLogger("signbot.slack")

SCOPES = ["envelopes:read", "envelopes:write", "webhooks:write"]


def _provider_key(db: Database, box: SecretBox) -> str:
    """A live key of the default account for the bot, created once (sealed at rest)."""

    def make() -> str:
        def work(session: Any) -> str:
            account = accounts.default_account(session)
            return accounts.create_key(session, account.id, "live", "slack bot", SCOPES).secret

        return box.seal(db.run_sync(work))

    return box.open(store.setting(db, "provider_key", make))


def build(settings: Settings, db: Database, box: SecretBox) -> SlackBot | None:
    """The bot when Slack is configured (``SLACK_SIGNING_SECRET`` + ``SLACK_BOT_TOKEN``)."""
    if not (settings.slack_signing_secret and settings.slack_bot_token):
        log.info("Slack is not configured (SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN): bot off")
        return None
    public = settings.effective_public_url
    key = settings.provider_key or _provider_key(db, box)
    provider = ProviderClient(settings.provider_url or public, key)
    return SlackBot(
        db=db,
        provider=provider,
        signing_secret=settings.slack_signing_secret,
        bot_token=settings.slack_bot_token,
        api_url=settings.slack_api_url,
        hook_url=f"{public}/hooks/esign",
        seal=box.seal,
        unseal=box.open,
    )


def mount(app: FastAPI, bot: SlackBot) -> None:
    @app.post("/slack/events", include_in_schema=False)
    async def slack_events(request: Request) -> Any:
        return await bot.handler.handle(request)

    @app.post("/hooks/esign", include_in_schema=False)
    async def esign_hook(request: Request) -> Any:
        return await bot.hook(request)
