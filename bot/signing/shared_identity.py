"""The generated sealing identity, kept in the database so that every replica seals alike.

Replicas on separate machines (or containers) do not share ``{data_dir}``: had each one
generated its own certificate, documents of one deployment would carry different seals, and
users told to trust one root would see the others' seals as untrusted. So the identity lives
in ``deployment_settings`` under one key: the certificates in PEM and the seal's private key
encrypted with the deployment's secret box (AES-256-GCM, a purpose of its own). The first
replica to start creates it (two at once: the primary key lets one win, and the other loads
the winner's); a deployment from before this moved into the database has its files under
``{data_dir}/seal/`` imported instead, so its seals keep validating against the same root.

``{data_dir}/seal/root.pem`` (and ``seal.pem``) are still written on every replica, as an
export for operators and for ``signbot verify``'s default; the key never goes to disk.
``SIGNBOT_SEAL_P12`` bypasses all this: the operator's file wins.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag

from bot.db import Database
from bot.deployment import box_key, get_or_create
from bot.secretbox import SecretBox
from bot.signing.certs import (
    ROOT_PEM,
    SEAL_DIR,
    SEAL_KEY_PEM,
    SEAL_PEM,
    SealIdentity,
    SealIdentityError,
    identity_from_pems,
    load_identity,
    new_identity_pems,
    warn_self_signed,
)

log = logging.getLogger("signbot.signing")

SETTING = "seal_identity"


def load_shared_identity(
    db: Database, data_dir: Path, p12_path: Path | None, p12_password: str | None
) -> SealIdentity:
    """The deployment's sealing identity: the P12 when configured, else the one every
    replica shares through the database. Raises :class:`SealIdentityError` for the operator."""
    if p12_path is not None:
        return load_identity(data_dir, p12_path, p12_password)
    box = SecretBox(box_key(db), "seal-key")
    seal_dir = Path(data_dir) / SEAL_DIR

    def make() -> str:
        if (seal_dir / SEAL_PEM).exists() and (seal_dir / SEAL_KEY_PEM).exists():
            pems = {n: (seal_dir / n).read_bytes() for n in (ROOT_PEM, SEAL_PEM, SEAL_KEY_PEM)}
            identity_from_pems(pems, None)  # refuse to share files that do not load
            log.info("moved the sealing identity of %s into the database", seal_dir)
        else:
            pems = new_identity_pems()
            log.info("generated a self-signed sealing identity (kept in the database)")
        return json.dumps(
            {
                "root": pems[ROOT_PEM].decode(),
                "cert": pems[SEAL_PEM].decode(),
                "key": box.seal(pems[SEAL_KEY_PEM].decode()),
            }
        )

    stored_json = get_or_create(db, SETTING, make)  # database errors are not damage
    try:
        stored = json.loads(stored_json)
        pems = {
            ROOT_PEM: stored["root"].encode(),
            SEAL_PEM: stored["cert"].encode(),
            SEAL_KEY_PEM: box.open(stored["key"]).encode(),
        }
        identity = identity_from_pems(pems, None)
    except (ValueError, KeyError, TypeError, InvalidTag) as exc:
        # a damaged row, or a secret box key that changed
        raise SealIdentityError(
            f"cannot load the sealing identity kept in the database ({type(exc).__name__}: "
            f"{exc}); set SIGNBOT_SEAL_P12, or delete the deployment setting {SETTING!r} to "
            "generate a new one (its root must then be trusted again)"
        ) from exc
    root_file = _export(seal_dir, pems)
    identity = dataclasses.replace(identity, root_pem=root_file)
    warn_self_signed(identity)
    return identity


def _export(seal_dir: Path, pems: dict[str, bytes]) -> Path | None:
    """Write the certificates (never the key) where operators and ``signbot verify`` look;
    a read-only data directory only costs the export, not the seal.

    Files of another identity found there (a replica that generated its own before the
    identity moved into the database) are kept beside, renamed after their fingerprint, so
    documents sealed with them can still be verified (``signbot verify --root``)."""
    try:
        seal_dir.mkdir(parents=True, exist_ok=True)
        for name in (ROOT_PEM, SEAL_PEM):
            target = seal_dir / name
            if target.exists():
                old = target.read_bytes()
                if old == pems[name]:
                    continue
                kept = seal_dir / f"{target.stem}-{hashlib.sha256(old).hexdigest()[:12]}.pem"
                os.replace(target, kept)
                log.warning(
                    "%s held another sealing identity's certificate than the deployment's: "
                    "kept as %s (to verify documents sealed with it), replaced",
                    target,
                    kept.name,
                )
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=seal_dir)
            with os.fdopen(fd, "wb") as out:
                out.write(pems[name])
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        return (seal_dir / ROOT_PEM).resolve()
    except OSError as exc:
        log.warning("could not export the seal's root certificate to %s: %s", seal_dir, exc)
        return None
