"""The bot's claim on a webhook delivery, on a real database: handled once, a concurrent
redelivery asked to come back, and an event whose replica died mid-way handled again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from bot import migrations
from bot.db import Database
from bot.slack import store
from bot.slack.models import SeenDelivery
from bot.timeutil import utcnow
from tests.conftest import PG_URL
from tests.support.pg import throwaway_database


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not PG_URL, reason="SIGNBOT_TEST_DATABASE_URL is not set"),
            ],
        ),
    ],
)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{(tmp_path / 'signbot.db').resolve()}")
        migrations.upgrade(database)
        yield database
        database.dispose()
        return
    assert PG_URL
    with throwaway_database(PG_URL, prefix="signbot_claims") as url:
        database = Database(url)
        try:
            migrations.upgrade(database)
            yield database
        finally:
            database.dispose()


async def test_handled_once_then_acknowledged(db: Database) -> None:
    assert await store.claim(db, "evt_1") == "new"
    assert await store.claim(db, "evt_1") == "busy"  # still being handled
    await db.run(lambda s: store.finish_delivery(s, "evt_1"))
    assert await store.claim(db, "evt_1") == "done"


async def test_failed_handling_is_given_back(db: Database) -> None:
    assert await store.claim(db, "evt_2") == "new"
    await db.run(lambda s: store.release_delivery(s, "evt_2"))
    assert await store.claim(db, "evt_2") == "new"


async def test_a_dead_replicas_claim_runs_out(db: Database) -> None:
    assert await store.claim(db, "evt_3") == "new"
    # the replica handling it was killed: nobody finishes or releases; time passes
    past = utcnow() - timedelta(seconds=1)
    db.run_sync(
        lambda s: s.exec(  # type: ignore[call-overload]
            update(SeenDelivery).where(SeenDelivery.event_id == "evt_3").values(claimed_until=past)
        )
    )
    assert await store.claim(db, "evt_3") == "new"
    assert await store.claim(db, "evt_3") == "busy"


async def test_a_finished_event_is_never_released(db: Database) -> None:
    assert await store.claim(db, "evt_4") == "new"
    await db.run(lambda s: store.finish_delivery(s, "evt_4"))
    await db.run(lambda s: store.release_delivery(s, "evt_4"))
    assert await store.claim(db, "evt_4") == "done"


async def test_one_replica_at_a_time_registers_the_webhook(db: Database) -> None:
    import asyncio

    from bot.slack.models import BotSetting

    takes = await asyncio.gather(
        *(store.try_lock(db, "webhook-registration", timedelta(seconds=60)) for _ in range(4))
    )
    assert sorted(takes) == [False, False, False, True]
    # a holder that died: its lock runs out and the next replica gets it
    db.run_sync(
        lambda s: s.exec(  # type: ignore[call-overload]
            update(BotSetting)
            .where(BotSetting.key == "lock:webhook-registration")
            .values(value=(utcnow() - timedelta(seconds=1)).isoformat())
        )
    )
    assert await store.try_lock(db, "webhook-registration", timedelta(seconds=60))
    await db.run(lambda s: store.unlock(s, "webhook-registration"))
    assert await store.try_lock(db, "webhook-registration", timedelta(seconds=60))
