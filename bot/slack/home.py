"""App Home: "Waiting for my signature" and "Sent by me", published when the tab opens.

"Waiting" lists the requests in which the user is a recipient (by member id) whose turn it
is, with the "Review and sign" button from the sign link kept (sealed) at creation or send;
"Sent" lists the user's latest requests with where each stands.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from sqlalchemy import String, cast
from sqlmodel import Session, col, select

from bot.slack import ids, requests, store, views
from bot.slack.core import Core, team_of
from bot.slack.models import SignRequest

log = logging.getLogger("signbot.slack")

SCAN = 200
"""Newest active requests of the workspace mentioning the user that are looked at."""


def waiting_rows(session: Session, team_id: str, user_id: str) -> list[SignRequest]:
    """Active requests of the workspace whose recipients mention ``user_id``, newest first.
    The JSON is matched as text (``"U0ADA"`` with its quotes; ids are checked to be plain
    Slack ids), the same on SQLite and PostgreSQL; the caller keeps those where the user
    really has to act."""
    if not ids.is_slack_id(user_id):
        return []
    query = (
        select(SignRequest)
        .where(
            SignRequest.team_id == team_id,
            col(SignRequest.status).in_(sorted(requests.ACTIVE)),
            cast(SignRequest.recipients, String).like(f'%"{user_id}"%'),
        )
        .order_by(col(SignRequest.created_at).desc())
        .limit(SCAN)
    )
    return list(session.exec(query))


async def publish(core: Core, team_id: str, user_id: str) -> None:
    sent_rows = await core.db.run(lambda s: store.mine(s, team_id, user_id))
    candidates = await core.db.run(lambda s: waiting_rows(s, team_id, user_id))
    sent = [await core.view(r) for r in sent_rows]
    waiting: list[views.WaitingItem] = []
    for row in candidates:
        for recipient in row.recipients:
            role = (recipient.get("role") or "SIGNER").upper()
            status = (recipient.get("status") or "").upper()
            if (
                recipient.get("slack_user_id") == user_id
                and role in requests.ACTING_ROLES
                and status in requests.WAITING
            ):
                waiting.append(
                    views.WaitingItem(
                        subject=row.subject,
                        sign_url=core.sign_url(recipient),
                        requester_id=row.requester_id,
                        status=status,
                        expires_at=row.expires_at,
                    )
                )
                break
    view = views.home_view(sent, waiting)
    await core.call("views.publish", core.client.views_publish, user_id=user_id, view=view)


def register(app: AsyncApp, core: Core) -> None:
    @app.event("app_home_opened")
    async def opened(body: dict[str, Any], event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home" or not event.get("user"):
            return
        await publish(core, team_of(body), str(event["user"]))
