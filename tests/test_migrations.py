"""Every migration runs down and up again, and the migrated schema matches the models (a
model change without its migration fails here, on SQLite and on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import bot.models  # noqa: F401  (every table)
from bot import migrations
from bot.db import Database
from tests.conftest import BACKENDS, PG_URL
from tests.support.pg import throwaway_database


@pytest.fixture(params=BACKENDS)
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "postgresql":
        assert PG_URL
        with throwaway_database(PG_URL) as url:
            db = Database(url)
            yield db
            db.dispose()
        return
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    yield db
    db.dispose()


def _differences(db: Database) -> list[object]:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def test_down_and_up_again_and_models_match(empty_db: Database) -> None:
    migrations.upgrade(empty_db)
    assert _differences(empty_db) == []
    migrations.downgrade(empty_db, "base")
    migrations.upgrade(empty_db)
    assert _differences(empty_db) == []


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="SIGNBOT_TEST_DATABASE_URL is not set")
def test_replicas_migrating_a_fresh_database_together_take_turns() -> None:
    """Three replicas start at once on an empty database: the advisory lock lets one migrate
    while the others wait, then finds them at head (without it: duplicate-table errors)."""
    import threading

    assert PG_URL
    with throwaway_database(PG_URL) as url:
        errors: list[BaseException] = []
        gate = threading.Barrier(3)

        def start_replica() -> None:
            db = Database(url)
            try:
                gate.wait()
                migrations.upgrade(db)
            except BaseException as exc:  # reported by the test
                errors.append(exc)
            finally:
                db.dispose()

        threads = [threading.Thread(target=start_replica) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        db = Database(url)
        try:
            assert _differences(db) == []
        finally:
            db.dispose()
