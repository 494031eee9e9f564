"""Accounts, workspaces and API keys: use cases shared by the API and the CLI.

Services never commit; callers run them inside ``Database.run`` / ``run_sync``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, bindparam
from sqlmodel import Session, col, func, select

from bot.accounts.models import Account, ApiKey, Workspace
from bot.errors import Forbidden, NotFound, ValidationFailed
from bot.ids import new_id
from bot.timeutil import utcnow

ENVIRONMENTS = ("test", "live")
SCOPES = ("envelopes:read", "envelopes:write", "webhooks:write", "keys:write")
DEFAULT_ACCOUNT_NAME = "default"
_ALPHABET = string.ascii_letters + string.digits
_SECRET_RE = re.compile(r"^sk_(test|live)_[A-Za-z0-9]{32}$")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_secret(secret: str) -> bool:
    return bool(_SECRET_RE.match(secret))


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "workspace"


def create_account(session: Session, name: str, email: str | None = None) -> Account:
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed.field("name", "must be 1 to 200 characters")
    if session.exec(select(Account).where(Account.name == name)).first():
        raise ValidationFailed.field("name", f"an account named {name!r} already exists")
    account = Account(
        id=new_id("account"), name=name, email=email, is_default=name == DEFAULT_ACCOUNT_NAME
    )
    session.add(account)
    session.flush()
    session.add(
        Workspace(
            id=new_id("workspace"),
            account_id=account.id,
            name=name,
            slug=slugify(name),
            is_default=True,
        )
    )
    session.flush()
    return account


def default_account(session: Session) -> Account:
    """The default account, created at first use (the CLI's and the bot's home).

    Replicas starting together race to create it: one that sees it committed between its
    two reads takes it; one whose insert loses to the unique name raises IntegrityError,
    and its caller's retry finds it (:func:`bot.db.shared_value` does)."""
    query = select(Account).where(Account.name == DEFAULT_ACCOUNT_NAME)
    account = session.exec(query).first()
    if account is not None:
        return account
    try:
        return create_account(session, DEFAULT_ACCOUNT_NAME)
    except ValidationFailed:
        account = session.exec(query).first()  # created and committed just now, elsewhere
        if account is None:
            raise
        return account


def find_account(session: Session, id_or_name: str) -> Account:
    account = (
        session.get(Account, id_or_name)
        or session.exec(select(Account).where(Account.name == id_or_name)).first()
    )
    if account is None:
        raise NotFound(f"No account with id or name {id_or_name!r}")
    return account


def list_accounts(session: Session) -> list[Account]:
    return list(session.exec(select(Account).order_by(col(Account.created_at))))


def create_workspace(session: Session, account_id: str, name: str) -> Workspace:
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed.field("name", "must be 1 to 200 characters")
    workspace = Workspace(
        id=new_id("workspace"), account_id=account_id, name=name, slug=slugify(name)
    )
    session.add(workspace)
    session.flush()
    return workspace


def list_workspaces(session: Session, account_id: str) -> list[Workspace]:
    return list(
        session.exec(
            select(Workspace)
            .where(Workspace.account_id == account_id)
            .order_by(col(Workspace.is_default).desc(), col(Workspace.created_at))
        )
    )


def default_workspace(session: Session, account_id: str) -> Workspace:
    workspace = session.exec(
        select(Workspace).where(Workspace.account_id == account_id, Workspace.is_default)
    ).first()
    if workspace is None:  # accounts made before workspaces existed: heal
        workspace = Workspace(
            id=new_id("workspace"),
            account_id=account_id,
            name="Default",
            slug="default",
            is_default=True,
        )
        session.add(workspace)
        session.flush()
    return workspace


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    secret: str
    """Shown once, never stored."""


def parse_scopes(raw: list[str] | str | None) -> list[str]:
    """Scopes from a list or a comma/space-separated string; unknown ones are refused."""
    if raw is None:
        return list(SCOPES)
    items = re.split(r"[\s,]+", raw) if isinstance(raw, str) else list(raw)
    scopes: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValidationFailed.field("scopes", "must be strings")
        item = item.strip()
        if not item:
            continue
        if item not in SCOPES:
            raise ValidationFailed.field(
                "scopes", f"unknown scope {item[:40]!r}; known: {', '.join(SCOPES)}"
            )
        if item not in scopes:
            scopes.append(item)
    if not scopes:
        raise ValidationFailed.field("scopes", "at least one scope is required")
    return scopes


def create_key(
    session: Session,
    account_id: str,
    environment: str,
    name: str = "",
    scopes: list[str] | None = None,
    *,
    minted_by: ApiKey | None = None,
) -> NewKey:
    """A new key; when ``minted_by`` (an API caller) is given, it cannot exceed that key."""
    if environment not in ENVIRONMENTS:
        raise ValidationFailed.field("environment", "must be test or live")
    if len(name) > 200:
        raise ValidationFailed.field("name", "must be at most 200 characters")
    scopes = parse_scopes(scopes)
    if minted_by is not None:
        if environment != minted_by.environment:
            raise Forbidden(f"A {minted_by.environment} key cannot create a {environment} key")
        missing = [s for s in scopes if s not in minted_by.scopes.split()]
        if missing:
            raise Forbidden(f"Insufficient scope: cannot grant {', '.join(missing)}")
    secret = f"sk_{environment}_" + "".join(secrets.choice(_ALPHABET) for _ in range(32))
    key = ApiKey(
        id=new_id("key"),
        account_id=account_id,
        environment=environment,
        name=name,
        scopes=" ".join(scopes),
        secret_hash=hash_secret(secret),
        prefix=secret[:10],
        last4=secret[-4:],
    )
    session.add(key)
    session.flush()
    return NewKey(key, secret)


def list_keys(
    session: Session,
    account_id: str | None,
    environment: str | None = None,
    *,
    offset: int = 0,
    limit: int | None = None,
) -> tuple[list[ApiKey], int]:
    query = select(ApiKey)
    count = select(func.count()).select_from(ApiKey)
    if account_id is not None:
        query = query.where(ApiKey.account_id == account_id)
        count = count.where(ApiKey.account_id == account_id)
    if environment is not None:
        query = query.where(ApiKey.environment == environment)
        count = count.where(ApiKey.environment == environment)
    query = query.order_by(col(ApiKey.created_at).desc(), col(ApiKey.id).desc()).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query)), session.exec(count).one()


def revoke_key(
    session: Session, key_id: str, account_id: str | None = None, environment: str | None = None
) -> ApiKey:
    """Revoke a key; scoped to a tenant when called from the API (404 for another's key)."""
    key = session.get(ApiKey, key_id)
    if (
        key is None
        or (account_id is not None and key.account_id != account_id)
        or (environment is not None and key.environment != environment)
    ):
        raise NotFound(f"No API key {key_id}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.add(key)
    return key


#: What authentication needs of a key, as one prebuilt statement (compiled once, cached).
KEY_BY_HASH = select(
    ApiKey.id,
    ApiKey.account_id,
    ApiKey.environment,
    ApiKey.scopes,
    ApiKey.revoked_at,
    ApiKey.last_used_at,
).where(ApiKey.secret_hash == bindparam("secret_hash"))


def find_key_row(connection: Connection, secret: str) -> Row[Any] | None:
    """The key presented as ``secret`` (hot path: a Core read, no ORM)."""
    return connection.execute(KEY_BY_HASH, {"secret_hash": hash_secret(secret)}).first()


def find_key_by_secret(session: Session, secret: str) -> ApiKey | None:
    return session.exec(select(ApiKey).where(ApiKey.secret_hash == hash_secret(secret))).first()
