"""The life of the install: a workspace that uninstalls signbot (or revokes its bot token)
gets nothing more from it until it is back.

The rule:

* ``app_uninstalled``, and ``tokens_revoked`` naming a **bot** token, record the workspace as
  gone: a ``BotSetting`` row ``uninstalled:{team_id}`` whose value is the event's time and
  kind. (A ``tokens_revoked`` that names only user tokens changes nothing: the bot uses none.)
* While it is recorded, nothing is posted to that workspace: ``/hooks/esign`` still verifies,
  records the delivery and updates the request row (so the row is right on return), but makes
  no Slack call; reminder jobs must ask :func:`silenced` too.
* Slack sends a workspace's commands, clicks and events only while the app is installed
  there, so any later request from it means it is back and clears the record — except an
  event that happened *before* the uninstall (Slack retries deliveries for a while), told
  apart by its ``event_time`` (whole seconds: one from the same second counts as later).
* Nothing missed is replayed on return: the next webhook of a request updates its message
  again, and App Home is rebuilt whenever it is opened.
* With many workspaces (OAuth), the workspace's stored install is revoked too
  (``SlackInstallation.revoked_at``): no token is handed out for it, so Bolt refuses its
  requests and background work finds no client. Installing again (``/slack/install``) stores
  the new token and clears both records (:func:`returned`). An uninstall delivered late, whose
  ``event_time`` is before the latest install, changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from sqlmodel import Session

from bot.db import Database
from bot.slack import store
from bot.slack.models import BotSetting, SlackInstallation
from bot.timeutil import to_utc, utcnow

log = logging.getLogger("signbot.slack")

GONE_EVENTS = frozenset({"app_uninstalled", "tokens_revoked"})


def key(team_id: str) -> str:
    return f"uninstalled:{team_id}"


async def silenced(db: Database, team_id: str) -> bool:
    """Whether signbot must not post to this workspace (uninstalled, bot token revoked)."""
    if not team_id:
        return False
    return await db.run(lambda s: s.get(BotSetting, key(team_id))) is not None


async def record_gone(db: Database, team_id: str, event_time: int, kind: str) -> bool:
    return await db.run(lambda s: gone(s, team_id, event_time, kind))


def gone(session: Session, team_id: str, event_time: int, kind: str) -> bool:
    """Record the workspace as gone (and revoke its stored install, if it has one); False for
    a late delivery from before its latest install."""
    installed = session.get(SlackInstallation, team_id, with_for_update=True)
    if installed is not None:
        if event_time and event_time < int(to_utc(installed.installed_at).timestamp()):
            return False
        if installed.revoked_at is None:
            installed.revoked_at = utcnow()
            session.add(installed)
    store.put_setting(session, key(team_id), f"{event_time} {kind}")
    return True


def returned(session: Session, team_id: str) -> None:
    """The workspace installed signbot again: it is not gone any more."""
    row = session.get(BotSetting, key(team_id))
    if row is not None:
        session.delete(row)


async def resume(db: Database, team_id: str, event_time: int | None) -> bool:
    """Clear the record when a request shows the app is installed again; whether it did.
    ``event_time`` (events only) must not be earlier than the uninstall."""

    def work(session: Session) -> bool:
        row = session.get(BotSetting, key(team_id))
        if row is None:
            return False
        gone_at = int(row.value.split()[0]) if row.value.split()[0].isdigit() else 0
        if event_time is not None and event_time < gone_at:
            return False
        session.delete(row)
        return True

    return await db.run(work)


def register(app: AsyncApp, db: Database) -> None:
    """The two events, and the middleware that notices a workspace is back."""

    @app.middleware
    async def back_again(body: dict[str, Any], context: Any, next: Any) -> Any:
        team_id = context.team_id or body.get("team_id")
        event = body.get("event") if body.get("type") == "event_callback" else None
        kind = (event or {}).get("type")
        if team_id and kind not in GONE_EVENTS:
            when = body.get("event_time") if event is not None else None
            if await resume(db, str(team_id), int(when) if when else None):
                log.info("workspace %s is back: signbot posts there again", team_id)
        return await next()

    @app.event("app_uninstalled")
    async def uninstalled(body: dict[str, Any]) -> None:
        await _gone(db, body, "app_uninstalled")

    @app.event("tokens_revoked")
    async def revoked(body: dict[str, Any], event: dict[str, Any]) -> None:
        if (event.get("tokens") or {}).get("bot"):
            await _gone(db, body, "tokens_revoked")


async def _gone(db: Database, body: dict[str, Any], kind: str) -> None:
    team_id = str(body.get("team_id") or "")
    if not team_id:
        return
    if await record_gone(db, team_id, int(body.get("event_time") or 0), kind):
        log.info("workspace %s: %s; signbot stops posting there", team_id, kind)
    else:
        log.info("workspace %s: %s from before its latest install; ignored", team_id, kind)
