"""Replicas starting together on an empty database agree on one provider key for the bot.

Making that key writes rows of its own (the default account, an API key), which the replicas
race for as well; a replica losing that inner race must read the winner's key, not crash at
start (one did, under CI, in the two-replica Slack test).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from bot import slack_wiring
from bot.accounts.models import Account
from bot.accounts.service import DEFAULT_ACCOUNT_NAME
from bot.db import Database
from bot.deployment import box_key
from bot.secretbox import SecretBox
from tests.conftest import BACKENDS, PG_URL
from tests.support.pg import migrated_database

REPLICAS = 4


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with migrated_database(request.param, tmp_path, PG_URL, prefix="signbot_pkey") as database:
        yield database


def test_replicas_starting_together_share_one_provider_key(db: Database) -> None:
    box = SecretBox(box_key(db), "bot-secrets")
    start = threading.Barrier(REPLICAS)
    keys: list[str] = []
    errors: list[BaseException] = []

    def replica() -> None:
        start.wait()
        try:
            keys.append(slack_wiring._provider_key(db, box))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(REPLICAS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(keys) == REPLICAS and len(set(keys)) == 1
    assert keys[0].startswith("sk_live_")
    defaults = db.run_sync(
        lambda s: list(s.exec(select(Account).where(Account.name == DEFAULT_ACCOUNT_NAME)))
    )
    assert len(defaults) == 1
