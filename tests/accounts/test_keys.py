"""API keys in the accounts service: what is stored, what a key may mint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from bot import migrations
from bot.accounts import service
from bot.accounts.models import ApiKey
from bot.db import Database
from bot.errors import Forbidden, NotFound, ValidationFailed


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'keys.db'}")
    migrations.upgrade(database)
    yield database
    database.dispose()


def test_only_a_hash_of_the_secret_is_stored(db: Database) -> None:
    new = db.run_sync(lambda s: service.create_key(s, service.default_account(s).id, "live"))
    assert new.secret.startswith("sk_live_") and len(new.secret) == 40
    database = Path(str(db.url.database))
    files = [p for p in database.parent.iterdir() if p.name.startswith(database.name)]
    assert files  # the database and its write-ahead log
    assert all(new.secret.encode() not in p.read_bytes() for p in files)
    assert any(service.hash_secret(new.secret).encode() in p.read_bytes() for p in files)
    stored = db.run_sync(lambda s: s.exec(select(ApiKey)).one())
    assert stored.secret_hash == service.hash_secret(new.secret)
    assert stored.prefix == new.secret[:10] and stored.last4 == new.secret[-4:]
    assert db.run_sync(lambda s: service.find_key_by_secret(s, new.secret)).id == new.key.id
    wrong = new.secret[:-1] + ("y" if new.secret.endswith("x") else "x")
    assert db.run_sync(lambda s: service.find_key_by_secret(s, wrong)) is None


def test_secrets_differ_every_time(db: Database) -> None:
    def make(s):  # type: ignore[no-untyped-def]
        account = service.default_account(s)
        return {service.create_key(s, account.id, "test").secret for _ in range(50)}

    assert len(db.run_sync(make)) == 50


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, list(service.SCOPES)),
        ("envelopes:read", ["envelopes:read"]),
        ("envelopes:read, envelopes:read,keys:write", ["envelopes:read", "keys:write"]),
        (["webhooks:write"], ["webhooks:write"]),
    ],
)
def test_scopes_are_parsed(raw: object, expected: list[str]) -> None:
    assert service.parse_scopes(raw) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", ["", "admin", "envelopes:read,root", [1]])
def test_unknown_or_empty_scopes_are_refused(raw: object) -> None:
    with pytest.raises(ValidationFailed):
        service.parse_scopes(raw)  # type: ignore[arg-type]


def test_a_key_cannot_mint_more_than_it_has(db: Database) -> None:
    def work(s):  # type: ignore[no-untyped-def]
        account = service.default_account(s)
        reader = service.create_key(s, account.id, "test", scopes=["envelopes:read", "keys:write"])
        with pytest.raises(Forbidden, match="envelopes:write"):
            service.create_key(
                s, account.id, "test", scopes=["envelopes:write"], minted_by=reader.key
            )
        with pytest.raises(Forbidden, match="live"):
            service.create_key(
                s, account.id, "live", scopes=["envelopes:read"], minted_by=reader.key
            )
        ok = service.create_key(
            s, account.id, "test", scopes=["envelopes:read"], minted_by=reader.key
        )
        return ok.key.scopes

    assert db.run_sync(work) == "envelopes:read"


def test_revoke_is_scoped_to_the_tenant(db: Database) -> None:
    def work(s):  # type: ignore[no-untyped-def]
        mine = service.create_account(s, "mine")
        theirs = service.create_account(s, "theirs")
        key = service.create_key(s, theirs.id, "test").key
        with pytest.raises(NotFound):
            service.revoke_key(s, key.id, mine.id, "test")
        with pytest.raises(NotFound):
            service.revoke_key(s, key.id, theirs.id, "live")
        return service.revoke_key(s, key.id, theirs.id, "test").revoked_at

    assert db.run_sync(work) is not None


def test_default_account_is_made_once_with_a_default_workspace(db: Database) -> None:
    first = db.run_sync(lambda s: service.default_account(s).id)
    second = db.run_sync(lambda s: service.default_account(s).id)
    assert first == second
    workspaces = db.run_sync(lambda s: service.list_workspaces(s, first))
    assert [w.is_default for w in workspaces] == [True]
    with pytest.raises(ValidationFailed, match="already exists"):
        db.run_sync(lambda s: service.create_account(s, "default"))
