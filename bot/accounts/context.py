"""Who is acting: the tenant every service call is scoped to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlmodel import Session

from bot.errors import NotFound
from bot.ids import looks_like


class _Owned(Protocol):
    account_id: str
    environment: str


OwnedT = TypeVar("OwnedT", bound=_Owned)


@dataclass(frozen=True)
class AuthContext:
    """The caller. Every query is scoped by ``account_id`` **and** ``environment``: test and
    live data never mix, and another tenant's object is simply not found."""

    key_id: str
    account_id: str
    environment: str
    scopes: frozenset[str]

    @property
    def is_test(self) -> bool:
        return self.environment == "test"


def get_owned(
    session: Session,
    model: type[OwnedT],
    kind: str,
    ctx: AuthContext,
    object_id: str,
    *,
    lock: bool = False,
) -> OwnedT:
    """The tenant's object ``object_id`` of ``model``; anything else — malformed, absent, another
    account's or the other environment's — is the same 404, so ids leak nothing.

    ``lock`` takes the row for update (PostgreSQL), so concurrent changes to one object queue
    up instead of both reading the same state."""
    found: Any = (
        session.get(model, object_id, with_for_update=True if lock else None)
        if looks_like(kind, object_id)
        else None
    )
    if found is None or found.account_id != ctx.account_id or found.environment != ctx.environment:
        raise NotFound(f"{kind.capitalize()} {object_id[:60]} not found")
    return found  # type: ignore[no-any-return]
