"""The bot's notices are queued posts: each goes out once, retried alone while Slack says
"not now", however the webhook that caused it went.

Driven as in production: the signer declines on the real signer page, the service's webhook
reaches the bot, and the fake Slack refuses posts for a while.
"""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.slack_response import SlackResponse
from sqlalchemy import update
from sqlmodel import col, select

from bot.envelopes import clock as service_clock
from bot.envelopes.models import Envelope as ServiceEnvelope
from bot.jobs.models import Task
from bot.slack.core import transient
from bot.slack.notices import KIND
from bot.timeutil import utcnow
from tests.slack.conftest import Deployment, sign
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

    def posts() -> list[Task]:
        return [t for t in queued() if t.payload.get("request") == row.id]

    until(lambda: posts() and all(t.status == "done" for t in posts()), what="every post done")
    assert any(t.attempts >= 2 for t in posts())  # retried as a task, not by the webhook


def test_the_next_signer_is_invited_once_though_slack_refuses_at_first(
    deployment: Deployment,
) -> None:
    """The DM that carries Bob's sign link is the notice that matters most."""
    fake = deployment.fake
    row = deployment.new_request(
        "Invite under pressure", members=("U0ADA", "U0BOB"), sequential=True
    )
    deployment.dm("U0ADA", lambda c: "Invite under pressure" in str(c.params))
    ada_link = deployment.mail_link("invitation", "ada@acme.example")
    for _ in range(6):  # more than the client's own retries
        fake.server_error_next("chat.postMessage", 503)
    sign(ada_link, "Ada Lovelace")

    def bobs_invites() -> list[str]:
        return _dms(deployment, "U0BOB", "Invite under pressure")

    until(bobs_invites, timeout=40, what="Bob's invitation DM")
    time.sleep(1.5)
    assert len(bobs_invites()) == 1
    kept = deployment.row(lambda r: r.id == row.id)
    assert all(p.get("dm_sent") for p in kept.recipients if p.get("slack_user_id"))


def test_an_expiry_is_told_once_by_the_webhook(deployment: Deployment) -> None:
    row = deployment.new_request("Left to expire", outside="Otto <otto@example.com>")
    deployment.db.run_sync(
        lambda s: s.exec(  # type: ignore[call-overload]
            update(ServiceEnvelope)
            .where(col(ServiceEnvelope.id) == row.envelope_id)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    )
    deployment.db.run_sync(service_clock.expire_due)  # the service emits envelope.expired

    until(
        lambda: [t for t in _thread(deployment, row.message_ts) if "Expired" in t],
        timeout=30,
        what="the expiry in the thread",
    )
    until(lambda: _dms(deployment, "U0REQ", "Left to expire"), timeout=30, what="the DM")
    assert deployment.row(lambda r: r.id == row.id and r.status == "EXPIRED")
    time.sleep(1.5)
    assert len([t for t in _thread(deployment, row.message_ts) if "Expired" in t]) == 1
    assert len([d for d in _dms(deployment, "U0REQ", "Left to expire") if "Expired" in d]) == 1


@pytest.mark.parametrize(
    ("status", "error", "retried"),
    [(429, "ratelimited", True), (503, "service_unavailable", True), (500, "fatal_error", False)],
)
def test_only_a_refusal_that_posted_nothing_is_retried(
    status: int, error: str, retried: bool
) -> None:
    response = SlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.com/api/chat.postMessage",
        req_args={},
        data={"ok": False, "error": error},
        headers={},
        status_code=status,
    )
    assert transient(SlackApiError("refused", response)) is retried
