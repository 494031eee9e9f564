"""The generated sealing identity is the deployment's, not a replica's: kept in the database,
shared by replicas with separate data directories, imported from an older ``seal/`` folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from sqlmodel import select

from bot import migrations
from bot.db import Database
from bot.deployment import DeploymentSetting
from bot.signing.certs import SealIdentityError, load_identity
from bot.signing.shared_identity import SETTING, load_shared_identity


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{(tmp_path / 'signbot.db').resolve()}")
    migrations.upgrade(database)
    return database


def _public(identity) -> bytes:  # type: ignore[no-untyped-def]
    return identity.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_replicas_with_their_own_disks_seal_with_one_identity(db: Database, tmp_path: Path):
    a = load_shared_identity(db, tmp_path / "a", None, None)
    b = load_shared_identity(db, tmp_path / "b", None, None)
    assert a.cert.dump() == b.cert.dump() and _public(a) == _public(b)
    # each exports the root for operators and `signbot verify`, never the key
    for side in ("a", "b"):
        seal = tmp_path / side / "seal"
        assert (seal / "root.pem").read_bytes() == (
            tmp_path / "a" / "seal" / "root.pem"
        ).read_bytes()
        assert not (seal / "seal-key.pem").exists()
    # the key is kept encrypted, not in clear
    stored = db.run_sync(
        lambda s: s.exec(select(DeploymentSetting).where(DeploymentSetting.key == SETTING)).one()
    )
    assert "PRIVATE KEY" not in stored.value


def test_an_existing_seal_folder_is_imported_not_replaced(db: Database, tmp_path: Path):
    old = load_identity(tmp_path / "old", None, None)  # how a deployment of before made it
    shared = load_shared_identity(db, tmp_path / "old", None, None)
    assert shared.cert.dump() == old.cert.dump()
    again = load_shared_identity(db, tmp_path / "new-replica", None, None)
    assert again.cert.dump() == old.cert.dump()


def test_a_damaged_stored_identity_is_a_clear_error(db: Database, tmp_path: Path):
    load_shared_identity(db, tmp_path / "a", None, None)

    def damage(session) -> None:  # type: ignore[no-untyped-def]
        row = session.get(DeploymentSetting, SETTING)
        row.value = row.value.replace('"key": "', '"key": "AAAA')
        session.add(row)

    db.run_sync(damage)
    with pytest.raises(SealIdentityError, match="SIGNBOT_SEAL_P12"):
        load_shared_identity(db, tmp_path / "b", None, None)


def test_a_replicas_own_older_identity_is_kept_beside_not_lost(db: Database, tmp_path: Path):
    deployment = load_shared_identity(db, tmp_path / "first", None, None)
    own = load_identity(tmp_path / "second", None, None)  # generated before the upgrade
    own_root = (tmp_path / "second" / "seal" / "root.pem").read_bytes()
    shared = load_shared_identity(db, tmp_path / "second", None, None)
    assert shared.cert.dump() == deployment.cert.dump() != own.cert.dump()
    seal = tmp_path / "second" / "seal"
    assert (seal / "root.pem").read_bytes() == (
        tmp_path / "first" / "seal" / "root.pem"
    ).read_bytes()
    kept = list(seal.glob("root-*.pem"))
    assert len(kept) == 1 and kept[0].read_bytes() == own_root  # old documents still verify
