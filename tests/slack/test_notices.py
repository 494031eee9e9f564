"""The bot's notices are queued posts: each goes out once, retried alone while Slack says
"not now", however the webhook that caused it went.

Driven as in production: the signer declines on the real signer page, the service's webhook
reaches the bot, and the fake Slack refuses posts for a while.
"""

from __future__ import annotations

import time

import httpx
from sqlmodel import select

from bot.jobs.models import Task
from bot.slack.notices import KIND
from tests.slack.conftest import Deployment
from tests.support.cluster import until


def _thread(deployment: Deployment, ts: str | None) -> list[str]:
    """What Slack kept in the request's thread (refused attempts are not messages)."""
    return [
        str(m.get("text"))
        for m in list(deployment.fake.messages.values())
        if m.get("thread_ts") == ts
    ]


def _dms(deployment: Deployment, user: str, needle: str) -> list[str]:
    channel = deployment.fake.dms.get(user, "")
    return [
        str(m.get("text"))
        for (where, _), m in list(deployment.fake.messages.items())
        if where == channel and needle in str(m.get("text"))
    ]


def test_a_decline_while_slack_struggles_is_told_once_each(deployment: Deployment) -> None:
    fake = deployment.fake
    row = deployment.new_request("Notices under pressure", outside="Nora <nora@example.com>")
    link = deployment.mail_link("invitation", "nora@example.com")
    # More refusals than the client's own retries (three calls each for the thread reply and
    # the DM): both can only go out as tasks retried later, the webhook long answered.
    for _ in range(6):
        fake.server_error_next("chat.postMessage", 503)
    declined = httpx.post(
        f"{link}/decline", data={"reason": "Wrong <amount> & date"}, follow_redirects=False
    )
    assert declined.status_code == 303, declined.text[:500]

    thread = until(
        lambda: [t for t in _thread(deployment, row.message_ts) if "Declined" in t],
        timeout=40,
        what="the decline in the thread",
    )
    until(lambda: _dms(deployment, "U0REQ", "was declined"), timeout=40, what="the requester's DM")
    assert "Wrong &lt;amount&gt; &amp; date" in thread[0]  # escaped for Slack
    time.sleep(1.5)  # anything doubled would have shown up by now
    assert len([t for t in _thread(deployment, row.message_ts) if "Declined" in t]) == 1
    assert len(_dms(deployment, "U0REQ", "was declined")) == 1

    def queued() -> list[Task]:
        return deployment.db.run_sync(lambda s: list(s.exec(select(Task).where(Task.kind == KIND))))

    posts = [t for t in queued() if t.payload.get("request") == row.id]
    assert posts and all(t.status == "done" for t in posts)
    assert any(t.attempts >= 2 for t in posts)  # retried as a task, not by the webhook
