"""Who is acting: the tenant every service call is scoped to."""

from __future__ import annotations

from dataclasses import dataclass


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
