"""Composing the Slack bot into the app (the composition root's part that knows both sides).

The bot itself imports nothing of the signing service; this module gives it what it needs
from the deployment: the provider's URL and key (by default this deployment's own API and a
live key of the default account, made once and kept sealed in the database so every replica
shares it), a way to seal its secrets (webhook secret, workspaces' bot tokens), and the HTTP
routes it answers.

Which Slack mode (:func:`slack_mode`): one workspace by token when ``SLACK_BOT_TOKEN`` is set;
many workspaces by OAuth when ``SLACK_CLIENT_ID`` and ``SLACK_CLIENT_SECRET`` are set and no
bot token is; ``SLACK_SIGNING_SECRET`` in both. With both a token and OAuth settings, the
token wins (the log says so).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import FastAPI, Request

from bot.accounts import service as accounts
from bot.config import Settings
from bot.db import Database
from bot.provider import ProviderClient
from bot.secretbox import SecretBox
from bot.slack import store
from bot.slack.bot import SlackBot
from bot.slack.oauth import INSTALL_PATH, REDIRECT_PATH, OAuthConfig

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


def slack_mode(settings: Settings) -> Literal["token", "oauth"] | None:
    """How the bot meets Slack, from the settings (None: the bot is off)."""
    oauth = bool(settings.slack_client_id and settings.slack_client_secret)
    if not settings.slack_signing_secret:
        return None
    if settings.slack_bot_token:
        return "token"
    return "oauth" if oauth else None


def build(settings: Settings, db: Database, box: SecretBox) -> SlackBot | None:
    """The bot when Slack is configured: ``SLACK_SIGNING_SECRET`` with ``SLACK_BOT_TOKEN`` (one
    workspace) or with ``SLACK_CLIENT_ID`` + ``SLACK_CLIENT_SECRET`` (many, by OAuth)."""
    mode = slack_mode(settings)
    if mode is None:
        log.info(
            "Slack is not configured (SLACK_SIGNING_SECRET with SLACK_BOT_TOKEN, or with "
            "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET): bot off"
        )
        return None
    assert settings.slack_signing_secret
    public = settings.effective_public_url
    oauth = None
    if mode == "oauth":
        assert settings.slack_client_id and settings.slack_client_secret
        oauth = OAuthConfig(
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret,
            scopes=tuple(settings.slack_scope_list),
            redirect_uri=f"{public}{REDIRECT_PATH}",
        )
        log.info("Slack: many workspaces by OAuth; install at %s%s", public, INSTALL_PATH)
    elif settings.slack_client_id or settings.slack_client_secret:
        log.warning(
            "Slack: SLACK_BOT_TOKEN is set, so signbot serves that one workspace and ignores "
            "SLACK_CLIENT_ID/SLACK_CLIENT_SECRET (unset the token for OAuth installs)"
        )
    if settings.provider_url and not settings.provider_key:
        # a key of this deployment means nothing to another provider (and must not leave)
        log.error("SIGNBOT_PROVIDER_URL is set without SIGNBOT_PROVIDER_KEY: Slack bot off")
        return None
    key = settings.provider_key or _provider_key(db, box)
    provider = ProviderClient(settings.provider_url or public, key)
    return SlackBot(
        db=db,
        provider=provider,
        signing_secret=settings.slack_signing_secret,
        bot_token=settings.slack_bot_token if mode == "token" else None,
        oauth=oauth,
        api_url=settings.slack_api_url,
        hook_url=f"{public}/hooks/esign",
        seal=box.seal,
        unseal=box.open,
        templates_dir=settings.templates_dir,
    )


def mount(app: FastAPI, bot: SlackBot) -> None:
    @app.post("/slack/events", include_in_schema=False)
    async def slack_events(request: Request) -> Any:
        return await bot.handler.handle(request)

    if bot.multi_workspace:

        @app.get(INSTALL_PATH, include_in_schema=False)
        async def slack_install(request: Request) -> Any:
            return await bot.handler.handle(request)

        @app.get(REDIRECT_PATH, include_in_schema=False)
        async def slack_oauth_redirect(request: Request) -> Any:
            return await bot.handler.handle(request)

    @app.post("/hooks/esign", include_in_schema=False)
    async def esign_hook(request: Request) -> Any:
        return await bot.hook(request)
