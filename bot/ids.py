"""Prefixed, sortable identifiers (``env_01HG…``), as Certyneo's.

A ULID after the prefix keeps ids time-ordered, so "most recent first" is an index scan on the
primary key's creation order and ids leak no counter. Pure module.
"""

from __future__ import annotations

import re

from ulid import ULID

PREFIXES = {
    "account": "acc",
    "workspace": "ws",
    "key": "key",
    "document": "doc",
    "envelope": "env",
    "recipient": "rcp",
    "field": "fld",
    "webhook": "wh",
    "delivery": "dlv",
    "event": "evt",
    "template": "tpl",
    "outbox": "obx",
    "task": "tsk",
    "request": "req",
}

_ID_RE = re.compile(r"^[a-z]{2,4}_[0-9A-HJKMNP-TV-Z]{26}$")


def new_id(kind: str) -> str:
    """A fresh id for an object of ``kind`` (a key of ``PREFIXES``)."""
    return f"{PREFIXES[kind]}_{ULID()}"


def looks_like(kind: str, value: str) -> bool:
    """Whether ``value`` has the shape of an id of ``kind`` (cheap pre-check before a query)."""
    return bool(_ID_RE.match(value)) and value.startswith(PREFIXES[kind] + "_")
