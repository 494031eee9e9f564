"""Throwaway PostgreSQL databases on the server of a given URL, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot import migrations
from bot.db import Database


def psycopg_url(url: str) -> str:
    """``url`` with the psycopg (3) driver where it names plain ``postgresql``/``postgres``."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


@contextmanager
def throwaway_database(url: str, prefix: str = "signbot_t") -> Iterator[str]:
    """Create ``<prefix>_<hex>`` on the server of ``url``, yield its URL, then end its
    connections and drop it."""
    admin_url = psycopg_url(url)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@contextmanager
def migrated_database(
    backend: str, directory: Path, pg_url: str | None, prefix: str = "signbot_t"
) -> Iterator[Database]:
    """A migrated database of our own on ``backend`` ("sqlite": a file in ``directory``;
    "postgresql": a throwaway database beside ``pg_url``), disposed (and dropped) after."""
    if backend == "sqlite":
        database = Database(f"sqlite:///{(directory / 'signbot.db').resolve()}")
        try:
            migrations.upgrade(database)
            yield database
        finally:
            database.dispose()
        return
    assert pg_url, "SIGNBOT_TEST_DATABASE_URL is not set"
    with throwaway_database(pg_url, prefix=prefix) as url:
        database = Database(url)
        try:
            migrations.upgrade(database)
            yield database
        finally:
            database.dispose()
