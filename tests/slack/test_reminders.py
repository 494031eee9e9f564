"""The bot's reminder and expiry job against the real app as provider and the fake Slack.

The app serves the signing API (and its worker, which writes the provider's emails as ``.eml``
files under ``mail/``); envelopes are created and sent through the provider client as the bot
does; request rows are written straight into the migrated database; ``SlackReminders.tick``
runs with a clock the test moves. No webhook is configured: the rows change only through the
job, so each assertion is about what the job did.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import delete, update

from bot import migrations
from bot.accounts import service as accounts
from bot.app import create_app
from bot.config import Settings
from bot.db import Database
from bot.envelopes import clock as service_clock
from bot.envelopes.models import Envelope as ServiceEnvelope
from bot.provider import Capabilities, ProviderClient
from bot.slack import install, reminders, store
from bot.slack.models import BotSetting, SignRequest
from bot.slack.reminders import SlackReminders
from bot.timeutil import iso, utcnow
from tests.conftest import PG_URL, make_pdf
from tests.support.pg import throwaway_database
from tests.support.servers import free_port, uvicorn_thread
from tests.support.slack_fake import Call, SlackFake, slack_fake

CHANNEL = "C0DEALS"
REQUESTER = "U0REQ"
ADA = "ada@acme.example"


def seal(link: str | None) -> str:
    """Stands for the deployment's SecretBox: the link is stored sealed, never in clear."""
    return f"sealed:{link}"


def unseal(sealed: str) -> str:
    if not sealed.startswith("sealed:"):
        raise ValueError("not sealed by this deployment")
    return sealed.removeprefix("sealed:")


@dataclass
class Env:
    base: str
    db: Database
    fake: SlackFake
    data_dir: Path
    key: str


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with slack_fake() as fake:
        fake.add_user(REQUESTER, "rita", real_name="Rita Requester", email="rita@acme.example")
        fake.add_user("U0ADA", "ada", real_name="Ada Lovelace", email="ada@acme.example")
        fake.add_user("U0BEN", "ben", real_name="Ben Okafor", email="ben@acme.example")
        data_dir = tmp_path_factory.mktemp("reminders-data")
        port = free_port()
        settings = Settings(
            data_dir=data_dir, port=port, jobs_interval_seconds=0.2, rate_limit_enabled=False
        )
        db = Database(settings.effective_database_url)
        migrations.upgrade(db)
        key = db.run_sync(
            lambda s: accounts.create_key(s, accounts.default_account(s).id, "live", "bot").secret
        )
        with uvicorn_thread(create_app(settings, db), port) as base:
            yield Env(base, db, fake, data_dir, key)
        db.dispose()


class Clock:
    """The job's clock, moved by the test (the provider keeps real time)."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
async def provider(env: Env) -> AsyncIterator[ProviderClient]:
    env.db.run_sync(lambda s: s.exec(delete(SignRequest)))  # type: ignore[call-overload]
    env.fake.reset()
    async with ProviderClient(env.base, env.key) as client:
        yield client


def slack(env: Env) -> AsyncWebClient:
    return AsyncWebClient(token=env.fake.token, base_url=env.fake.base_url)


def job_for(
    env: Env, provider: ProviderClient, clock: Clock, db: Database | None = None
) -> SlackReminders:
    return SlackReminders(db or env.db, provider, slack(env), clock, unseal=unseal)


async def new_request(
    env: Env,
    provider: ProviderClient,
    now: datetime,
    *,
    db: Database | None = None,
    interval: int = 3,
    max_count: int = 3,
    expires_in: timedelta = timedelta(days=30),
    provider_cadence: bool = False,
    outside: str | None = None,
) -> SignRequest:
    """A sent envelope for Ada (member, link known), Ben (member, link unknown) and one
    outside person, and its request row with a status message, first reminder due in
    ``interval`` days."""
    outside = outside or f"bruno.{uuid.uuid4().hex[:8]}@globex.example"
    document = await provider.upload_document(make_pdf(1), "nda.pdf")
    payload: dict[str, Any] = {
        "subject": "NDA with Globex",
        "documentIds": [document.id],
        "recipients": [
            {"email": "ada@acme.example", "name": "Ada Lovelace"},
            {"email": "ben@acme.example", "name": "Ben Okafor"},
            {"email": outside, "name": "Bruno Keller"},
        ],
        "expiresAt": iso(utcnow() + expires_in),
    }
    # the provider's own cadence (its account default when not given) or none at all
    cadence = (interval, max_count) if provider_cadence else (0, 0)
    payload["reminders"] = {"intervalDays": cadence[0], "maxCount": cadence[1]}
    created = await provider.create_envelope(payload)
    sent = await provider.send_envelope(created.id)
    links = {r.email: r.sign_url for r in sent.recipients}
    members = {"ada@acme.example": "U0ADA", "ben@acme.example": "U0BEN"}
    posted = await slack(env).chat_postMessage(channel=CHANNEL, text="status message")
    env.fake.reset()  # what the tests look at is the job's calls only

    def write(session: Any) -> SignRequest:
        row = store.new_request(
            session,
            team_id="T0TEST",
            channel_id=CHANNEL,
            message_ts=posted["ts"],
            requester_id=REQUESTER,
            subject="NDA with Globex",
            envelope_id=sent.id,
            status="SENT",
            recipients=[
                {
                    "name": r.name,
                    "email": r.email,
                    "slack_user_id": members.get(r.email),
                    "role": r.role,
                    "status": r.status,
                    **({"sign_url_sealed": seal(links[r.email])} if r.email == ADA else {}),
                }
                for r in sent.recipients
            ],
            reminder_interval_days=interval,
            reminder_max_count=max_count,
            expires_at=sent.expires_at,
        )
        row.next_reminder_at = reminders.next_due(row, now)
        return row

    return (db or env.db).run_sync(write)


def row_of(env: Env, request: SignRequest, db: Database | None = None) -> SignRequest:
    found = (db or env.db).run_sync(lambda s: s.get(SignRequest, request.id))
    assert found is not None
    return found


def dms(fake: SlackFake, user_id: str) -> list[Call]:
    return [c for c in fake.calls("chat.postMessage") if c.get("channel") == user_id]


def thread(fake: SlackFake, request: SignRequest) -> list[str]:
    return [
        str(c.get("text"))
        for c in fake.calls("chat.postMessage")
        if c.get("thread_ts") == request.message_ts
    ]


def reminder_mails(env: Env, email: str) -> list[Path]:
    slug = email.replace("@", "-").replace(".", "-")
    return sorted((env.data_dir / "mail").glob(f"*reminder-{slug}*.eml"))


async def wait_for_mail(env: Env, email: str, timeout: float = 15) -> list[Path]:
    deadline = time.monotonic() + timeout
    while not (found := reminder_mails(env, email)):
        assert time.monotonic() < deadline, f"no reminder email to {email}"
        await asyncio.sleep(0.1)
    return found


async def test_a_due_request_reminds_members_by_dm_and_outside_people_by_email(
    env: Env, provider: ProviderClient
) -> None:
    clock = Clock()
    request = await new_request(env, provider, clock.now, outside="bruno@globex.example")
    job = job_for(env, provider, clock)

    clock.advance(days=3, minutes=1)
    assert await job.tick() == 1

    ada = dms(env.fake, "U0ADA")
    assert len(ada) == 1
    blocks = str(ada[0].get("blocks"))
    assert "Reminder" in blocks and unseal(request.recipients[0]["sign_url_sealed"]) in blocks
    ben = dms(env.fake, "U0BEN")
    assert len(ben) == 1 and "invitation email" in str(ben[0].get("blocks"))
    assert "url" not in str(ben[0].get("blocks"))
    [reply] = thread(env.fake, request)
    assert reply.startswith("🔔 Reminder #1 sent to")
    assert "<@U0ADA> (Slack)" in reply and "<@U0BEN> (Slack)" in reply
    assert "Bruno Keller (email)" in reply and "ada@" not in reply
    assert await wait_for_mail(env, "bruno@globex.example")

    row = row_of(env, request)
    assert row.reminders_sent == 1
    assert row.next_reminder_at == clock.now + timedelta(days=3)
    assert [r["status"] for r in row.recipients] == ["SENT", "SENT", "SENT"]
    assert row.recipients[0]["sign_url_sealed"], "what only the bot knows is kept"


async def test_nothing_happens_before_the_reminder_is_due(
    env: Env, provider: ProviderClient
) -> None:
    clock = Clock()
    request = await new_request(env, provider, clock.now)
    job = job_for(env, provider, clock)
    clock.advance(days=2, hours=23)
    assert await job.tick() == 0
    assert env.fake.calls("chat.postMessage") == []
    assert row_of(env, request).reminders_sent == 0


def test_next_due_is_the_next_reminder_or_the_expiry() -> None:
    now = utcnow()
    expires = now + timedelta(days=10)
    row = SignRequest(
        id="r", team_id="T", number=1, channel_id="C", requester_id="U", subject="s",
        reminder_interval_days=3, reminder_max_count=2, expires_at=expires,
    )  # fmt: skip
    assert reminders.next_due(row, now) == now + timedelta(days=3)
    row.reminders_sent = 2
    assert reminders.next_due(row, now) == expires, "no reminder left: the expiry is watched"
    assert (
        reminders.next_due(row, expires + timedelta(hours=1))
        == expires + timedelta(hours=1) + reminders.EXPIRY_RECHECK
    ), "past it: asked again later, not on every tick"
    row.reminder_interval_days, row.expires_at = 0, None
    assert reminders.next_due(row, now) is None


async def test_rows_finished_meanwhile_leave_the_scan(env: Env, provider: ProviderClient) -> None:
    clock = Clock()
    request = await new_request(env, provider, clock.now)

    def complete(session: Any) -> None:  # as a webhook would have recorded it
        row = session.get(SignRequest, request.id)
        row.status = "COMPLETED"
        session.add(row)

    env.db.run_sync(complete)
    clock.advance(days=3, minutes=1)
    assert await job_for(env, provider, clock).tick() == 0
    assert row_of(env, request).next_reminder_at is None
    assert env.fake.calls("chat.postMessage") == []


async def test_no_more_reminders_once_the_limit_is_reached(
    env: Env, provider: ProviderClient
) -> None:
    clock = Clock()
    request = await new_request(env, provider, clock.now, interval=1, max_count=2)
    job = job_for(env, provider, clock)
    for number in (1, 2):
        clock.advance(days=1, seconds=1)
        assert await job.tick() == 1
        assert thread(env.fake, request)[-1].startswith(f"🔔 Reminder #{number} ")
    row = row_of(env, request)
    assert row.reminders_sent == 2
    assert row.next_reminder_at == row.expires_at, "only the expiry is left to watch"

    for _ in range(3):
        clock.advance(days=1, seconds=1)
        assert await job.tick() == 0
    assert len(dms(env.fake, "U0ADA")) == 2 and len(thread(env.fake, request)) == 2


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(not PG_URL, reason="SIGNBOT_TEST_DATABASE_URL is not set"),
        ),
    ]
)
def bot_dbs(request: pytest.FixtureRequest, env: Env) -> Iterator[tuple[Database, Database]]:
    """Two workers' connections to the bot's tables: on the app's SQLite file, or on a
    throwaway PostgreSQL database (where the claims really run in parallel threads)."""
    if request.param == "sqlite":
        first, second = Database(str(env.db.url)), Database(str(env.db.url))
        yield first, second
        first.dispose()
        second.dispose()
        return
    assert PG_URL
    with throwaway_database(PG_URL) as url:
        first, second = Database(url), Database(url)
        migrations.upgrade(first)
        yield first, second
        first.dispose()
        second.dispose()


async def test_concurrent_ticks_remind_once(
    env: Env, provider: ProviderClient, bot_dbs: tuple[Database, Database]
) -> None:
    clock = Clock()
    first, second = bot_dbs
    requests = [await new_request(env, provider, clock.now, db=first) for _ in range(6)]
    workers = [job_for(env, provider, clock, db) for db in (first, second)] * 2
    clock.advance(days=3, minutes=1)

    claimed = await asyncio.gather(*(w.tick() for w in workers))

    assert sum(claimed) == len(requests)
    assert len(dms(env.fake, "U0ADA")) == len(requests)
    assert len(dms(env.fake, "U0BEN")) == len(requests)
    for request in requests:
        assert thread(env.fake, request) == [thread(env.fake, request)[0]]
        assert row_of(env, request, first).reminders_sent == 1


async def test_a_finished_envelope_gets_no_reminder(env: Env, provider: ProviderClient) -> None:
    clock = Clock()
    request = await new_request(env, provider, clock.now, outside="void@globex.example")
    await provider.void_envelope(request.envelope_id or "", "changed our minds")
    job = job_for(env, provider, clock)

    clock.advance(days=3, minutes=1)
    assert await job.tick() == 1  # claimed, then found finished at the provider

    assert env.fake.calls("chat.postMessage") == []
    row = row_of(env, request)
    assert row.status == "VOIDED" and row.next_reminder_at is None
    clock.advance(days=3)
    assert await job.tick() == 0
    await asyncio.sleep(1)
    assert reminder_mails(env, "void@globex.example") == []


async def test_expiry_is_announced_once_and_only_when_the_provider_agrees(
    env: Env, provider: ProviderClient
) -> None:
    clock = Clock()
    request = await new_request(env, provider, clock.now, expires_in=timedelta(days=1))
    job = job_for(env, provider, clock)

    clock.advance(days=1, hours=1)  # past the expiry by the bot's clock, not by the provider's
    assert await job.tick() == 1
    assert env.fake.calls("chat.postMessage") == [] and env.fake.calls("chat.update") == []
    row = row_of(env, request)
    assert row.status == "SENT"
    assert row.next_reminder_at == clock.now + reminders.EXPIRY_RECHECK

    past = utcnow() - timedelta(minutes=1)
    env.db.run_sync(
        lambda s: s.exec(  # type: ignore[call-overload]
            update(ServiceEnvelope)
            .where(ServiceEnvelope.id == request.envelope_id)  # type: ignore[arg-type]
            .values(expires_at=past)
        )
    )
    env.db.run_sync(service_clock.expire_due)
    assert (await provider.get_envelope(request.envelope_id or "")).status == "EXPIRED"

    clock.advance(minutes=6)
    assert await job.tick() == 1
    [reply] = thread(env.fake, request)
    assert reply.startswith("⌛ Expired with 0 of 3 signed")
    [dm] = dms(env.fake, REQUESTER)
    assert f"Request #{request.number}" in dm["text"] and "Expired" in dm["text"]
    updated = env.fake.last("chat.update")
    assert updated["ts"] == request.message_ts and "Expired" in str(updated["blocks"])
    row = row_of(env, request)
    assert row.status == "EXPIRED" and row.next_reminder_at is None

    clock.advance(days=10)
    assert await job.tick() == 0
    envelope = await provider.get_envelope(request.envelope_id or "")
    assert await job.follow_expiry(request.id, envelope) is False
    assert len(thread(env.fake, request)) == 1 and len(dms(env.fake, REQUESTER)) == 1


class NoExtensions(ProviderClient):
    """The provider as the hosted Certyneo is: no remind, no void."""

    async def capabilities(self, *, refresh: bool = False) -> Capabilities:
        return Capabilities()


async def test_without_the_remind_extension_only_members_are_reminded(
    env: Env, provider: ProviderClient
) -> None:
    clock = Clock()
    outside = "plain@globex.example"
    request = await new_request(env, provider, clock.now, outside=outside)
    async with NoExtensions(env.base, env.key) as plain:
        job = job_for(env, plain, clock)
        clock.advance(days=3, minutes=1)
        assert await job.tick() == 1
    [reply] = thread(env.fake, request)
    assert "<@U0ADA> (Slack)" in reply and "Bruno" not in reply and "email" not in reply
    await asyncio.sleep(1)
    assert reminder_mails(env, outside) == []


async def test_no_extra_email_when_the_provider_reminds_on_its_own_cadence(
    env: Env, provider: ProviderClient
) -> None:
    clock = Clock()
    outside = "cadence@globex.example"
    request = await new_request(env, provider, clock.now, outside=outside, provider_cadence=True)
    job = job_for(env, provider, clock)
    clock.advance(days=3, minutes=1)
    assert await job.tick() == 1
    assert len(dms(env.fake, "U0ADA")) == 1
    assert "Bruno" not in thread(env.fake, request)[0]
    await asyncio.sleep(1)
    assert reminder_mails(env, outside) == []


async def test_a_link_that_cannot_be_opened_points_to_the_email(
    env: Env, provider: ProviderClient
) -> None:
    clock = Clock()
    request = await new_request(env, provider, clock.now)

    def rotate(session: Any) -> None:  # sealed under a secret this deployment no longer has
        row = session.get(SignRequest, request.id)
        row.recipients = [{**r, "sign_url_sealed": "other-box:…"} for r in row.recipients]
        session.add(row)

    env.db.run_sync(rotate)
    clock.advance(days=3, minutes=1)
    assert await job_for(env, provider, clock).tick() == 1
    [ada] = dms(env.fake, "U0ADA")
    assert "invitation email sent to ada@acme.example" in str(ada.get("blocks"))
    assert "url" not in str(ada.get("blocks"))


async def test_slack_failures_are_logged_not_raised(env: Env, provider: ProviderClient) -> None:
    clock = Clock()
    request = await new_request(env, provider, clock.now)
    job = job_for(env, provider, clock)
    env.fake.fail_next("chat.postMessage", "channel_not_found")  # Ada's DM
    clock.advance(days=3, minutes=1)
    assert await job.tick() == 1
    [reply] = thread(env.fake, request)
    assert "<@U0ADA>" not in reply and "<@U0BEN> (Slack)" in reply
    assert row_of(env, request).reminders_sent == 1


async def test_an_uninstalled_workspace_hears_nothing(env: Env, provider: ProviderClient) -> None:
    clock = Clock()
    outside = "gone@globex.example"
    request = await new_request(env, provider, clock.now, outside=outside)
    env.db.run_sync(lambda s: store.put_setting(s, install.key("T0TEST"), "1 app_uninstalled"))
    try:
        clock.advance(days=3, minutes=1)
        assert await job_for(env, provider, clock).tick() == 1
        assert row_of(env, request).reminders_sent == 1, "skipped, not replayed later"
        assert env.fake.calls("chat.postMessage") == []
        await asyncio.sleep(1)
        assert reminder_mails(env, outside) == []
    finally:
        env.db.run_sync(lambda s: s.delete(s.get(BotSetting, install.key("T0TEST"))))


async def test_schedule_runs_the_tick_on_the_scheduler(env: Env, provider: ProviderClient) -> None:
    clock = Clock()
    request = await new_request(env, provider, clock.now)
    clock.advance(days=3, minutes=1)
    scheduler = AsyncIOScheduler(timezone="UTC")
    job = reminders.schedule(scheduler, job_for(env, provider, clock), 0.1)
    assert job.id == "slack_reminders"
    scheduler.start()
    try:
        await env.fake.async_wait_for(
            "chat.postMessage", lambda c: c.get("thread_ts") == request.message_ts, timeout=10
        )
    finally:
        scheduler.shutdown(wait=False)
    assert row_of(env, request).reminders_sent == 1
