"""Request and response shapes of the account, workspace and key routes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from bot.accounts.models import Account, ApiKey, Workspace
from bot.timeutil import iso
from bot.validation import Line


class CreateKeyIn(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    name: Line = Field(default="", max_length=200)
    environment: Literal["test", "live"] | None = None
    """Defaults to the calling key's environment (the only one it may create)."""
    scopes: list[str] | None = Field(default=None, max_length=10)


def account_json(account: Account, environment: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": account.id, "name": account.name, "plan": account.plan}
    if account.email:
        out["email"] = account.email
    out["environment"] = environment
    return out


def workspace_json(workspace: Workspace) -> dict[str, Any]:
    return {
        "id": workspace.id,
        "name": workspace.name,
        "slug": workspace.slug,
        "role": "OWNER",
        "isDefault": workspace.is_default,
    }


def key_json(key: ApiKey) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": key.id,
        "name": key.name,
        "environment": key.environment,
        "prefix": key.prefix,
        "last4": key.last4,
        "display": f"{key.prefix}…{key.last4}",
        "scopes": key.scopes.split(),
        "createdAt": iso(key.created_at),
        "lastUsedAt": iso(key.last_used_at),
        "revokedAt": iso(key.revoked_at),
        "isActive": key.revoked_at is None,
    }
    return out
