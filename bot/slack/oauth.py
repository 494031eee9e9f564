"""Workspaces and their tokens: many workspaces installed by OAuth, or one by token.

Each request Slack sends is answered with the token of *its* workspace, which Bolt finds
through an ``authorize``; background work (webhook notices, reminders) finds it by the request
row's ``team_id`` (:meth:`Installations.client`). What lives here:

* :class:`Installations` — Bolt's installation store on our database (``slack_installations``):
  one row per workspace, the bot token sealed with the deployment's secret. A reinstall
  replaces the token and clears the revocation; ``app_uninstalled`` / ``tokens_revoked``
  (see :mod:`~bot.slack.install`) set ``revoked_at``, after which no token is handed out.
* :class:`OAuthStates` — the OAuth ``state`` parameters, in the database so that a state
  issued by one replica is accepted by another; single use (consumed by a guarded DELETE, so
  two redirects racing with one state cannot both win) and expiring.
* :class:`FromInstallations` — the ``authorize`` of OAuth mode. The stored row already says
  what ``auth.test`` would (team, bot user, bot id, scopes), so no ``auth.test`` round trip is
  made per request before the ack (Bolt's own ``AsyncInstallationStoreAuthorize`` makes one
  on every request).
* :class:`SingleToken` — the ``authorize`` of token mode (``auth.test`` once, then cached).
  Passing an explicit ``authorize`` also keeps Bolt's ``AsyncApp`` from switching itself to
  OAuth on a file store when ``SLACK_CLIENT_ID`` and ``SLACK_CLIENT_SECRET`` happen to be in
  the environment (it reads them itself when it gets no ``oauth_settings``): with a bot
  token, token mode wins.
* :func:`oauth_settings` — the ``AsyncOAuthSettings`` of ``/slack/install`` and
  ``/slack/oauth_redirect`` on those stores.

Only workspace installs are kept: an org-wide (Enterprise Grid) install is refused with the
failure page (``slack-manifest.yml`` has ``org_deploy_enabled: false``). Token rotation is
off in the manifest; a token that expires is not refreshed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.error import BoltError
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from sqlalchemy import delete
from sqlmodel import Session, col

from bot.db import Database
from bot.slack import install
from bot.slack.models import SlackInstallation, SlackOAuthState
from bot.slack.webclient import web_client
from bot.timeutil import utcnow

log = logging.getLogger("signbot.slack.oauth")

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
STATE_SECONDS = 600
"""How long an install link stays usable (Slack's own codes live 10 minutes too)."""


@dataclass(frozen=True)
class OAuthConfig:
    """The Slack app's OAuth credentials and what an install asks for."""

    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...]
    """Bot scopes (``slack-manifest.yml``'s); no user scopes: signbot acts as its bot only."""
    redirect_uri: str
    """``{PUBLIC_URL}/slack/oauth_redirect``, one of the app's registered redirect URLs."""


# ------------------------------------------------------------------ installations


class Installations(AsyncInstallationStore):
    """Bolt's installation store on ``slack_installations`` (bot installs, one per workspace)."""

    def __init__(
        self,
        db: Database,
        *,
        seal: Callable[[str], str],
        unseal: Callable[[str], str],
        api_url: str,
    ) -> None:
        self.db = db
        self.seal, self.unseal = seal, unseal
        self.api_url = api_url

    @property
    def logger(self) -> logging.Logger:
        return log

    # --- what signbot asks ------------------------------------------------------------------
    async def active(self, team_id: str | None) -> SlackInstallation | None:
        """The workspace's install, unless there is none or it was revoked."""
        if not team_id:
            return None
        row = await self.db.run(lambda s: s.get(SlackInstallation, team_id))
        return row if row is not None and row.revoked_at is None else None

    def token_of(self, row: SlackInstallation) -> str | None:
        try:
            return self.unseal(row.bot_token_sealed)
        except Exception:  # another deployment secret: the workspace must install again
            log.error("workspace %s: its stored bot token cannot be opened", row.team_id)
            return None

    async def client(self, team_id: str) -> AsyncWebClient | None:
        """A Web API client with the workspace's bot token; None when it has no active install."""
        row = await self.active(team_id)
        token = self.token_of(row) if row is not None else None
        if token is None:
            return None
        return web_client(token=token, base_url=self.api_url, team_id=team_id)

    # --- Bolt's interface -------------------------------------------------------------------
    async def async_save(self, installation: Installation) -> None:
        if installation.is_enterprise_install or not installation.team_id:
            raise BoltError("signbot is installed per workspace, not org-wide")
        if not installation.bot_token or not installation.bot_user_id:
            raise BoltError("the install gave no bot token (the bot scopes are required)")
        await self._save(
            team_id=installation.team_id,
            enterprise_id=installation.enterprise_id,
            team_name=installation.team_name,
            app_id=installation.app_id,
            bot_token=installation.bot_token,
            bot_user_id=installation.bot_user_id,
            bot_id=installation.bot_id,
            scopes=",".join(installation.bot_scopes or []),
            installer_user_id=installation.user_id,
        )

    async def async_save_bot(self, bot: Bot) -> None:
        if bot.is_enterprise_install or not bot.team_id:
            raise BoltError("signbot is installed per workspace, not org-wide")
        await self._save(
            team_id=bot.team_id,
            enterprise_id=bot.enterprise_id,
            team_name=bot.team_name,
            app_id=bot.app_id,
            bot_token=bot.bot_token,
            bot_user_id=bot.bot_user_id,
            bot_id=bot.bot_id,
            scopes=",".join(bot.bot_scopes or []),
            installer_user_id=None,
        )

    async def _save(self, *, team_id: str, bot_token: str, **values: Any) -> None:
        sealed = self.seal(bot_token)
        if values.get("installer_user_id") is None:
            values.pop("installer_user_id")  # a bot-only save keeps the known installer

        def work(session: Session) -> None:
            row = session.get(SlackInstallation, team_id, with_for_update=True)
            if row is None:
                row = SlackInstallation(team_id=team_id, bot_token_sealed=sealed, **values)
            else:
                for name, value in values.items():
                    setattr(row, name, value)
                row.bot_token_sealed = sealed
            row.installed_at = utcnow()
            row.revoked_at = None
            session.add(row)
            install.returned(session, team_id)

        await self.db.run(work)
        log.info("workspace %s installed signbot", team_id)

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        row = await self.active(team_id)
        token = self.token_of(row) if row is not None else None
        if row is None or token is None:
            return None
        return Bot(
            app_id=row.app_id,
            enterprise_id=row.enterprise_id,
            team_id=row.team_id,
            team_name=row.team_name,
            bot_token=token,
            bot_id=row.bot_id or "",
            bot_user_id=row.bot_user_id,
            bot_scopes=row.scopes,
            installed_at=row.installed_at,
        )

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        """The workspace's install; with ``user_id``, only when that user installed it (signbot
        keeps no user tokens, so nobody else has an install of their own)."""
        row = await self.active(team_id)
        token = self.token_of(row) if row is not None else None
        if row is None or token is None:
            return None
        if user_id is not None and user_id != row.installer_user_id:
            return None
        return Installation(
            app_id=row.app_id,
            enterprise_id=row.enterprise_id,
            team_id=row.team_id,
            team_name=row.team_name,
            bot_token=token,
            bot_id=row.bot_id,
            bot_user_id=row.bot_user_id,
            bot_scopes=row.scopes,
            user_id=row.installer_user_id or "",
            installed_at=row.installed_at,
        )

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        if team_id:
            now = int(utcnow().timestamp())
            await self.db.run(lambda s: install.gone(s, team_id, now, "deleted"))

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        if user_id is None:  # a user's own token: signbot keeps none
            await self.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)


# ------------------------------------------------------------------ OAuth states


class OAuthStates(AsyncOAuthStateStore):
    """Single-use, expiring OAuth states shared by every replica."""

    def __init__(
        self,
        db: Database,
        expiration_seconds: int = STATE_SECONDS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.expiration = timedelta(seconds=expiration_seconds)
        self.clock = clock

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(32)
        now = self.clock()

        def work(session: Session) -> None:
            # the expired ones go as new ones come (through the index on expires_at)
            session.exec(delete(SlackOAuthState).where(col(SlackOAuthState.expires_at) <= now))  # type: ignore[call-overload]
            session.add(SlackOAuthState(state=state, expires_at=now + self.expiration))

        await self.db.run(work)
        return state

    async def async_consume(self, state: str) -> bool:
        """Whether ``state`` was issued here and has not expired nor been used; it is used now."""
        if not state or len(state) > 64:
            return False
        now = self.clock()

        def work(session: Session) -> bool:
            result = session.exec(  # type: ignore[call-overload]
                delete(SlackOAuthState).where(
                    col(SlackOAuthState.state) == state, col(SlackOAuthState.expires_at) > now
                )
            )
            return bool(result.rowcount == 1)

        return await self.db.run(work)


# ------------------------------------------------------------------ authorize


class FromInstallations(AsyncAuthorize):
    """OAuth mode: each request gets its workspace's stored token (no ``auth.test``)."""

    def __init__(self, installations: Installations) -> None:
        self.installations = installations

    async def __call__(
        self,
        *,
        context: Any,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        actor_enterprise_id: str | None = None,
        actor_team_id: str | None = None,
        actor_user_id: str | None = None,
    ) -> AuthorizeResult | None:
        row = await self.installations.active(team_id)
        token = self.installations.token_of(row) if row is not None else None
        if row is None or token is None:
            log.info("workspace %s has no active install of signbot", team_id)
            return None
        return AuthorizeResult(
            enterprise_id=row.enterprise_id or enterprise_id,
            team_id=row.team_id,
            team=row.team_name,
            bot_user_id=row.bot_user_id,
            bot_id=row.bot_id,
            bot_token=token,
            bot_scopes=row.scopes,
            user_id=user_id,
        )


class SingleToken(AsyncAuthorize):
    """Token mode: every request gets the one bot token; ``auth.test`` once (retried on the
    next request while it fails)."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._known: AsyncSlackResponse | None = None
        self._lock = asyncio.Lock()

    async def __call__(
        self,
        *,
        context: Any,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        actor_enterprise_id: str | None = None,
        actor_team_id: str | None = None,
        actor_user_id: str | None = None,
    ) -> AuthorizeResult | None:
        if self._known is None:
            async with self._lock:
                if self._known is None:
                    self._known = await self.client.auth_test()
        known = self._known
        return AuthorizeResult(
            enterprise_id=known.get("enterprise_id"),
            team_id=known.get("team_id"),
            team=known.get("team"),
            url=known.get("url"),
            bot_user_id=known.get("user_id"),
            bot_id=known.get("bot_id"),
            bot_token=self.client.token,
            bot_scopes=known.headers.get("x-oauth-scopes"),
            user_id=user_id,
        )


# ------------------------------------------------------------------ settings


def oauth_settings(
    config: OAuthConfig, installations: Installations, states: OAuthStates
) -> AsyncOAuthSettings:
    """``/slack/install`` (a page with the "Add to Slack" link, the state in a cookie) and
    ``/slack/oauth_redirect`` (state checked, ``oauth.v2.access``, install saved)."""
    return AsyncOAuthSettings(
        client_id=config.client_id,
        client_secret=config.client_secret,
        scopes=list(config.scopes),
        user_scopes=[],
        redirect_uri=config.redirect_uri,
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        installation_store=installations,
        installation_store_bot_only=True,
        state_store=states,
        state_expiration_seconds=int(states.expiration.total_seconds()),
        logger=log,
    )
