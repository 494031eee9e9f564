"""The ``bot:`` block of a template's YAML: who the bot proposes by default.

The signing service ignores this block; the bot reads it straight from the templates folder
(``SIGNBOT_TEMPLATES_DIR``), so it never imports the service's template code and works the same
in front of a remote provider whose templates have matching ids (``tpl_`` + the file's slug).

    bot:
      channel: "#legal"          # a channel id (C…) or #name
      approver: "@jane"          # a user id (U…), an email address or @name
      members: ["U0123", "bob@acme.example"]   # one per template role, in order

Names are looked up through Slack (``users.lookupByEmail``, ``users.list``,
``conversations.list``); what cannot be found is left empty with a log line, never an error:
the person filling the modal still chooses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger("signbot.slack")

MAX_PAGES = 10


@dataclass(frozen=True)
class BotDefaults:
    members: tuple[str, ...] = ()
    approver: str | None = None
    channel: str | None = None


def read(templates_dir: Path | None, template_id: str | None) -> BotDefaults:
    """The template's ``bot:`` block, or empty defaults (no folder, no file, no block)."""
    if templates_dir is None or not template_id or not template_id.startswith("tpl_"):
        return BotDefaults()
    slug = template_id.removeprefix("tpl_")
    if not slug.replace("-", "").isalnum():
        return BotDefaults()
    path = templates_dir / f"{slug}.yaml"
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, yaml.YAMLError) as exc:
        log.warning("template %s: its bot block cannot be read: %s", path, exc)
        return BotDefaults()
    block = document.get("bot") if isinstance(document, dict) else None
    if not isinstance(block, dict):
        return BotDefaults()
    members = block.get("members") or []
    return BotDefaults(
        members=tuple(str(m) for m in members if m) if isinstance(members, list) else (),
        approver=str(block["approver"]) if block.get("approver") else None,
        channel=str(block["channel"]) if block.get("channel") else None,
    )


@dataclass(frozen=True)
class Resolved:
    members: tuple[str | None, ...] = ()
    approver: str | None = None
    channel: str | None = None


async def resolve(client: AsyncWebClient, defaults: BotDefaults) -> Resolved:
    """Slack ids for what the block names (None where it cannot be found)."""
    if defaults == BotDefaults():
        return Resolved()
    return Resolved(
        members=tuple([await _user(client, m) for m in defaults.members]),
        approver=await _user(client, defaults.approver) if defaults.approver else None,
        channel=await _channel(client, defaults.channel) if defaults.channel else None,
    )


def _looks_like(value: str, prefixes: str) -> bool:
    return value[:1] in prefixes and value[1:].isalnum() and value.isupper() and len(value) >= 9


async def _user(client: AsyncWebClient, value: str | None) -> str | None:
    if not value:
        return None
    if _looks_like(value, "UW"):
        return value
    try:
        if "@" in value and not value.startswith("@"):
            return (await client.users_lookupByEmail(email=value))["user"]["id"]
        wanted = value.removeprefix("@").lower()
        return await _find(client, "users_list", "members", wanted, _user_names)
    except SlackApiError as exc:
        log.info("template default %r not found in Slack: %s", value, exc.response.get("error"))
        return None


async def _channel(client: AsyncWebClient, value: str) -> str | None:
    if _looks_like(value, "CG"):
        return value
    wanted = value.removeprefix("#").lower()
    try:
        return await _find(client, "conversations_list", "channels", wanted, _channel_names)
    except SlackApiError as exc:
        log.info("template channel %r not found in Slack: %s", value, exc.response.get("error"))
        return None


def _user_names(user: dict[str, Any]) -> set[str]:
    profile = user.get("profile") or {}
    return {
        str(n).lower()
        for n in (user.get("name"), profile.get("display_name"), profile.get("real_name"))
        if n
    }


def _channel_names(channel: dict[str, Any]) -> set[str]:
    return {str(channel.get("name") or "").lower()}


async def _find(
    client: AsyncWebClient, method: str, key: str, wanted: str, names: Any
) -> str | None:
    cursor = None
    for _ in range(MAX_PAGES):
        page = await getattr(client, method)(limit=200, cursor=cursor)
        for item in page.get(key) or []:
            if wanted in names(item):
                return str(item["id"])
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return None
    return None
