"""The bot's claim on a webhook delivery, on a real database: handled once, a concurrent
redelivery asked to come back, and an event whose replica died mid-way handled again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import select

from bot.db import Database
from bot.slack import store
from bot.slack.models import SeenDelivery
from bot.timeutil import utcnow
from tests.conftest import BACKENDS, PG_URL
from tests.support.pg import migrated_database


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with migrated_database(request.param, tmp_path, PG_URL, prefix="signbot_claims") as database:
        yield database


async def test_handled_once_then_acknowledged(db: Database) -> None:
    assert await store.claim(db, "evt_1", "a") == "new"
    assert await store.claim(db, "evt_1", "b") == "busy"  # still being handled
    await db.run(lambda s: store.finish_delivery(s, "evt_1", "a"))
    assert await store.claim(db, "evt_1", "c") == "done"


async def test_failed_handling_is_given_back(db: Database) -> None:
    assert await store.claim(db, "evt_2", "a") == "new"
    await db.run(lambda s: store.release_delivery(s, "evt_2", "a"))
    assert await store.claim(db, "evt_2", "b") == "new"


def _time_passes(db: Database, event_id: str) -> None:
    past = utcnow() - timedelta(seconds=1)
    db.run_sync(
        lambda s: s.exec(  # type: ignore[call-overload]
            update(SeenDelivery).where(SeenDelivery.event_id == event_id).values(claimed_until=past)
        )
    )


async def test_a_dead_replicas_claim_runs_out(db: Database) -> None:
    assert await store.claim(db, "evt_3", "a") == "new"
    _time_passes(db, "evt_3")  # replica a was killed: nobody finishes or releases
    assert await store.claim(db, "evt_3", "b") == "new"
    assert await store.claim(db, "evt_3", "c") == "busy"


async def test_a_stale_holder_can_neither_release_nor_finish_its_successors_claim(
    db: Database,
) -> None:
    assert await store.claim(db, "evt_5", "slow") == "new"
    _time_passes(db, "evt_5")  # "slow" stalled past its claim
    assert await store.claim(db, "evt_5", "next") == "new"
    await db.run(lambda s: store.release_delivery(s, "evt_5", "slow"))
    assert await store.claim(db, "evt_5", "third") == "busy"  # "next" still holds it
    await db.run(lambda s: store.finish_delivery(s, "evt_5", "slow"))
    assert await store.claim(db, "evt_5", "third") == "busy"  # not marked done by "slow"
    assert not await db.run(lambda s: store.renew_delivery(s, "evt_5", "slow"))
    assert await db.run(lambda s: store.renew_delivery(s, "evt_5", "next"))
    await db.run(lambda s: store.finish_delivery(s, "evt_5", "next"))
    assert await store.claim(db, "evt_5", "third") == "done"


async def test_a_finished_event_is_never_released(db: Database) -> None:
    assert await store.claim(db, "evt_4", "a") == "new"
    await db.run(lambda s: store.finish_delivery(s, "evt_4", "a"))
    await db.run(lambda s: store.release_delivery(s, "evt_4", "a"))
    assert await store.claim(db, "evt_4", "b") == "done"


async def test_one_replica_at_a_time_registers_the_webhook(db: Database) -> None:
    import asyncio

    from bot.slack.models import BotSetting

    lock, ttl = "webhook-registration", timedelta(seconds=60)
    takes = await asyncio.gather(*(store.try_lock(db, lock, f"r{i}", ttl) for i in range(4)))
    assert sorted(takes) == [False, False, False, True]
    holder = f"r{takes.index(True)}"
    # the holder stalled: its lock runs out and the next replica gets it
    db.run_sync(
        lambda s: s.exec(  # type: ignore[call-overload]
            update(BotSetting)
            .where(BotSetting.key == f"lock:{lock}")
            .values(value=f"{(utcnow() - timedelta(seconds=1)).isoformat()}|{holder}")
        )
    )
    assert await store.try_lock(db, lock, "next", ttl)
    await db.run(lambda s: store.unlock(s, lock, holder))  # the stale holder's unlock...
    assert not await store.try_lock(db, lock, "third", ttl)  # ...leaves "next" holding it
    await db.run(lambda s: store.unlock(s, lock, "next"))
    assert await store.try_lock(db, lock, "third", ttl)


def test_old_deliveries_are_forgotten_but_not_one_being_handled(db: Database) -> None:
    now = utcnow()
    old = now - store.SEEN_RETENTION - timedelta(hours=1)
    rows = [
        SeenDelivery(event_id="evt_old_done", seen_at=old, done=True),
        SeenDelivery(event_id="evt_old_abandoned", seen_at=old, claimed_until=old),
        SeenDelivery(
            event_id="evt_old_busy",
            seen_at=old,
            claim="x",
            claimed_until=now + timedelta(minutes=1),
        ),
        SeenDelivery(event_id="evt_recent", seen_at=now - timedelta(days=29), done=True),
    ]
    db.run_sync(lambda s: s.add_all(rows))

    assert db.run_sync(store.forget_old_deliveries) == 2
    left = db.run_sync(lambda s: sorted(r.event_id for r in s.exec(select(SeenDelivery))))
    assert left == ["evt_old_busy", "evt_recent"]
    assert db.run_sync(store.forget_old_deliveries) == 0
