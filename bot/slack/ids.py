"""The names the bot and Slack agree on: callback ids, block ids, action ids, private_metadata.

Kept apart from the builders (``views``) and the readers (``parsing``) so that both use the
same spelling: a renamed block id that only one side knew about would silently lose a field.
Pure module: standard library only.

Block ids of the sign modal are ``BASE`` or ``BASE.VARIANT``. Slack keeps what the user typed
in an input across ``views.update`` as long as its ``block_id`` is unchanged — and then ignores
a new ``initial_value``. So the fields a template prefills carry the template id as a variant
(choosing another template resets them to that template's defaults), role slots carry the
template and their index, and everything else keeps a bare, stable id. Readers compare
:func:`base_of` a block id, never the whole id.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# --- callback ids (view_submission routing) -------------------------------------------------
SIGN_CALLBACK = "sign_submit"
REJECT_CALLBACK = "reject_submit"

# --- sign modal: block ids, each input's action id is the same string -----------------------
TEMPLATE = "template"
"""static_select of templates (+ "Upload a PDF instead"); dispatches a block action."""
FILE = "file"
"""file_input, pdf, one file; only without a template."""
SUBJECT = "subject"
MESSAGE = "message"
MEMBERS = "members"
"""multi_users_select of workspace members (no template, or a template without roles)."""
OUTSIDE = "outside"
"""Multiline "Name <email>" lines for people outside the workspace."""
ORDER = "order"
"""radio_buttons: ``parallel`` or ``sequential``."""
CHANNEL = "channel"
"""conversations_select where the status message goes."""
REMIND = "remind"
"""static_select: reminder interval in days, ``0`` for none."""
EXPIRY = "expiry"
"""static_select: days until the request expires."""
APPROVAL = "approval"
"""checkboxes with the single option :data:`APPROVAL_VALUE`."""
APPROVER = "approver"
"""users_select of who approves."""
ROLE_USER = "role_user"
"""A template role's users_select; block id ``role_user.<template id>.<index>``."""
ROLE_EMAIL = "role_email"
"""A template role's "or Name <email>" input; block id ``role_email.<template id>.<index>``."""

UPLOAD_VALUE = "upload"
"""The template select's value for "Upload a PDF instead" (no template id looks like it)."""
APPROVAL_VALUE = "approval"
PARALLEL = "parallel"
SEQUENTIAL = "sequential"

# --- reject modal ---------------------------------------------------------------------------
REJECT_REASON = "reason"

# --- message actions (block_actions routing); the button value is the request id ------------
REMIND_ACTION = "remind_request"
CANCEL_ACTION = "cancel_request"
APPROVE_ACTION = "approve_request"
REJECT_ACTION = "reject_request"
SIGN_LINK_ACTION = "open_sign_url"
"""URL buttons still send a block action; the bot acks it and does nothing else."""

METADATA_MAX = 3000
"""Slack's limit on ``private_metadata``."""

_SLACK_ID = re.compile(r"^[A-Z][A-Z0-9]{2,40}$")


def block_id(base: str, *variant: str | int) -> str:
    """``base`` or ``base.v1.v2``: see the module docstring for why variants exist."""
    return ".".join([base, *(str(v) for v in variant)])


def base_of(block: str) -> str:
    """The constant a block id was built from: ``subject.tpl_nda`` → ``subject``."""
    return block.split(".", 1)[0]


def slot_index(block: str) -> int | None:
    """The role index at the end of a role slot's block id, None for any other block."""
    if base_of(block) not in (ROLE_USER, ROLE_EMAIL):
        return None
    tail = block.rsplit(".", 1)[-1]
    return int(tail) if tail.isdigit() else None


def is_slack_id(value: str | None) -> bool:
    """Whether ``value`` looks like a Slack user, channel or team id (``U0123ABC``): only
    such values are ever put inside ``<@…>``/``<#…>``, so a crafted id cannot inject markup."""
    return bool(value) and bool(_SLACK_ID.match(value or ""))


@dataclass(frozen=True)
class ModalMetadata:
    """What the sign modal carries from ``/sign`` to its submission (``private_metadata``)."""

    channel_id: str | None = None
    """Where /sign was typed (the status message's default channel)."""
    template_id: str | None = None
    """The template the view was built for; the submission reads the select's own value."""
    response_url: str | None = None
    """The slash command's response_url, to answer ephemerally after the modal closes."""
    team_id: str | None = None
    thread_ts: str | None = None

    def encode(self) -> str:
        """Compact JSON within Slack's 3000 characters. The response_url goes first when it
        does not fit (the bot can still DM); ids never exceed a few dozen characters."""
        data = {
            "c": self.channel_id,
            "t": self.template_id,
            "r": self.response_url,
            "w": self.team_id,
            "h": self.thread_ts,
        }
        compact = {k: v for k, v in data.items() if v}
        text = json.dumps(compact, separators=(",", ":"), ensure_ascii=False)
        if len(text) > METADATA_MAX:
            compact.pop("r", None)
            text = json.dumps(compact, separators=(",", ":"), ensure_ascii=False)
        if len(text) > METADATA_MAX:
            raise ValueError("private_metadata would exceed Slack's 3000 characters")
        return text

    @classmethod
    def decode(cls, text: str | None) -> ModalMetadata:
        """Tolerant: a view without metadata (or from an older version) yields empty fields."""
        try:
            data: Any = json.loads(text or "{}")
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}

        def get(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        return cls(
            channel_id=get("c"),
            template_id=get("t"),
            response_url=get("r"),
            team_id=get("w"),
            thread_ts=get("h"),
        )
