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
