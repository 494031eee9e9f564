"""The Slack bot on two replicas behind a load balancer: one webhook subscription, and every
Slack post once — even when each of the provider's webhooks reaches both replicas at once.

Two ``signbot serve`` processes (own data directories) share PostgreSQL and S3; a round-robin
balancer in front of them is the deployment's public URL, which Slack, the signer and the
provider's webhooks all use. The balancer sends each ``/hooks/esign`` request to *both*
replicas at the same instant (as a provider's retry racing its first attempt would), so the
bot's claim on each delivery is what stands between the channel and a double post.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlmodel import select

from bot.db import Database
from bot.slack.models import BotSetting, SignRequest
from bot.webhooks.models import WebhookEndpoint
from tests.conftest import PG_URL, make_pdf
from tests.slack.conftest import USERS
from tests.support.cluster import Replica, RoundRobin, SmtpSink, start_together, until
from tests.support.mailbox import sign_link
from tests.support.pg import throwaway_database
from tests.support.s3 import moto_server
from tests.support.slack_fake import SlackFake, slack_fake
from tests.support.slack_requests import SIGNING_SECRET, slash_command, view_submission

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="SIGNBOT_TEST_DATABASE_URL is not set"),
]


@dataclass
class Bots:
    balancer: RoundRobin
    a: Replica
    b: Replica
    db: Database
    fake: SlackFake
    smtp: SmtpSink

    def post(self, request: tuple[bytes, dict[str, str]]) -> httpx.Response:
        body, headers = request
        return httpx.post(
            f"{self.balancer.url}/slack/events", content=body, headers=headers, timeout=30
        )


@pytest.fixture(scope="module")
def bots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bots]:
    assert PG_URL
    base = tmp_path_factory.mktemp("replicas-slack")
    with contextlib.ExitStack() as stack:
        fake = stack.enter_context(slack_fake())
        for user_id, (name, real, address) in USERS.items():
            fake.add_user(user_id, name, real_name=real, email=address)
        smtp = SmtpSink()
        stack.callback(smtp.close)
        balancer = RoundRobin()
        stack.callback(balancer.close)
        database_url = stack.enter_context(throwaway_database(PG_URL, prefix="signbot_bots"))
        s3 = stack.enter_context(moto_server())
        env = {
            "SIGNBOT_DATABASE_URL": database_url,
            "SIGNBOT_PUBLIC_URL": balancer.url,
            **s3.environment("bots"),
            "SIGNBOT_SMTP_URL": smtp.url,
            "SIGNBOT_JOBS_INTERVAL_SECONDS": "0.2",
            "SIGNBOT_JOBS_LEASE_SECONDS": "2",
            "SIGNBOT_WEBHOOK_RETRY_BASE_SECONDS": "0.5",
            "SIGNBOT_RATE_LIMIT_ENABLED": "false",
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_BOT_TOKEN": "xoxb-test-token",
            "SLACK_API_URL": fake.base_url,
        }
        a, b = Replica("a", base / "a", env), Replica("b", base / "b", env)
        balancer.targets = [a.url, b.url]
        balancer.fan_out = {"/hooks/esign"}
        for replica in (a, b):
            stack.callback(replica.terminate)
        start_together(a, b)
        db = Database(database_url)
        stack.callback(db.dispose)
        until(
            lambda: db.run_sync(lambda s: s.get(BotSetting, "webhook_secret")),
            what="the bot's webhook registration",
        )
        yield Bots(balancer, a, b, db, fake, smtp)


def test_replicas_starting_together_register_one_webhook(bots: Bots) -> None:
    time.sleep(3)  # the replica that lost the race has looked again by now
    hook_url = f"{bots.balancer.url}/hooks/esign"
    subscriptions = bots.db.run_sync(
        lambda s: list(s.exec(select(WebhookEndpoint).where(WebhookEndpoint.url == hook_url)))
    )
    assert len(subscriptions) == 1, [(w.id, w.is_active) for w in subscriptions]
    assert subscriptions[0].is_active


def test_each_slack_post_once_though_every_webhook_hits_both_replicas(bots: Bots) -> None:
    fake = bots.fake
    started = time.monotonic()
    typed = slash_command("", user_id="U0REQ", channel_id="C0DEALS")
    assert bots.post(typed).status_code == 200
    opened = fake.wait_for(
        "views.open",
        lambda c: c.at >= started and _view(c).get("callback_id") == "sign_submit",
        timeout=15,
    )
    pdf = fake.add_file("Supply deal.pdf", make_pdf(1))
    answers = {
        "file": [pdf],
        "subject": "Supply deal",
        "members": [],
        "outside": "Bruno Keller <bruno@globex.example>",
        "order": "parallel",
        "channel": "C0DEALS",
    }
    submitted = bots.post(view_submission(_view(opened), "U0REQ", answers))
    assert submitted.status_code == 200 and "errors" not in submitted.text, submitted.text
    request = until(
        lambda: bots.db.run_sync(
            lambda s: s.exec(
                select(SignRequest).where(
                    SignRequest.subject == "Supply deal",
                    SignRequest.status == "SENT",
                    SignRequest.message_ts.is_not(None),  # type: ignore[union-attr]
                )
            ).first()
        ),
        what="the request, sent",
    )
    invitation = until(lambda: bots.smtp.to("bruno@globex.example", "invitation"))[0]
    link = sign_link(invitation)
    assert link.startswith(bots.balancer.url)
    form = {"name": "Bruno Keller", "mode": "typed", "typed": "Bruno Keller", "consent": "yes"}
    assert httpx.post(f"{link}/sign", data=form, timeout=30).status_code == 303

    fake.wait_for(
        "files.completeUploadExternal",
        lambda c: request.message_ts in str(c.params),
        timeout=60,
    )
    until(
        lambda: bots.db.run_sync(lambda s: s.get(SignRequest, request.id).status == "COMPLETED"),
        what="the request completed",
    )
    time.sleep(4)  # any double post would have come by now

    # every webhook reached both replicas: one handled it, the other stood back
    assert len(bots.balancer.raced) >= 2 * 3  # envelope.sent, recipient.signed, completed…
    statuses = Counter(bots.balancer.raced)
    assert statuses[200] >= len(bots.balancer.raced) // 2
    assert set(statuses) <= {200, 503}, statuses  # 503: "being handled; retry later"

    uploads = [
        c for c in fake.calls("files.completeUploadExternal") if request.message_ts in str(c.params)
    ]
    assert len(uploads) == 1
    replies = [
        json.dumps(c.get("blocks") or c.get("text"), sort_keys=True)
        for c in fake.calls("chat.postMessage")
        if c.get("thread_ts") == request.message_ts
    ]
    assert replies and len(replies) == len(set(replies)), replies
    status_posts = [
        c
        for c in fake.calls("chat.postMessage")
        if c.get("channel") == "C0DEALS" and not c.get("thread_ts")
        and "Supply deal" in str(c.get("blocks"))
    ]  # fmt: skip
    assert len(status_posts) == 1
    # both replicas did some of the work behind the balancer
    assert all(bots.balancer.sent.get(r.url, 0) > 0 for r in (bots.a, bots.b))


def _view(call: object) -> dict:
    view = call["view"]  # type: ignore[index]
    return json.loads(view) if isinstance(view, str) else view
