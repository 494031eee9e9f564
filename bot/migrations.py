"""Alembic, driven from code: ``serve`` and every CLI command migrate before they work."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic.config import Config
from sqlalchemy import text

from alembic import command
from bot.db import Database

ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


#: Any constant: replicas starting together take turns on it (Alembic has no lock of its own).
_LOCK_ID = 0x5167_B07


def _migrate(db: Database, step: Callable[[Config], None]) -> None:
    config = alembic_config(db.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        config.attributes["connection"] = connection
        step(config)


def upgrade(db: Database, revision: str = "head") -> None:
    _migrate(db, lambda config: command.upgrade(config, revision))


def downgrade(db: Database, revision: str) -> None:
    _migrate(db, lambda config: command.downgrade(config, revision))
