"""What a loaded template is: frozen dataclasses, the defaults they start from, the error type.

Nothing here reads files or knows HTTP: the loader builds these from ``templates/NAME.yaml``,
the registry keeps them, the API and envelope creation read them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.envelopes.lifecycle import Role, SigningOrder
from bot.envelopes.schemas import UNSUPPORTED_FIELD_TYPES, FieldType

ID_PREFIX = "tpl_"

ROLES: tuple[str, ...] = tuple(r.value for r in Role)
"""SIGNER, VIEWER, CARBON_COPY, APPROVER: the envelope's own recipient roles."""
FIELD_TYPES: tuple[str, ...] = tuple(t.value for t in FieldType if t not in UNSUPPORTED_FIELD_TYPES)
"""The field types envelope creation accepts (the same list, so a template never promises a
field the API would refuse)."""
NEEDS_OPTIONS = frozenset({FieldType.DROPDOWN.value, FieldType.RADIO_GROUP.value})
PLACEMENTS = ("right", "below", "above", "left")
SIGNING_ORDERS: tuple[str, ...] = tuple(o.value for o in SigningOrder)
NO_FIELDS_ROLES = frozenset({Role.VIEWER.value, Role.CARBON_COPY.value})
"""Roles that only receive a copy: they have nothing to fill in."""

DEFAULT_PAGE = 1
DEFAULT_X = 72.0
DEFAULT_Y = 700.0
"""Certyneo's fallback position: points from the left and from the TOP edge."""
DEFAULT_SIZE: Mapping[str, tuple[float, float]] = {
    "SIGNATURE": (150.0, 40.0),  # Certyneo's own default
    "INITIALS": (60.0, 30.0),
    "DATE_SIGNED": (120.0, 24.0),
    "TEXT": (180.0, 24.0),
    "CHECKBOX": (16.0, 16.0),
    "DROPDOWN": (150.0, 24.0),
    "RADIO_GROUP": (150.0, 48.0),
}
"""Width and height in points when the template gives none, by field type."""

MAX_DOCUMENTS = 20
MAX_ROLES = 100
MAX_FIELDS = 500
MAX_OPTIONS = 100
"""The same limits as envelope creation, so a template always fits in an envelope."""

_SLUG_JUNK = re.compile(r"[^a-z0-9]+")


def slug(stem: str) -> str:
    """``Mutual NDA`` → ``mutual-nda``: lowercase ASCII letters, digits and single dashes."""
    return _SLUG_JUNK.sub("-", stem.lower()).strip("-")


def template_id(path: Path) -> str:
    """The stable id of the template described by ``path`` (its file name, not its content):
    the same on every restart and every replica, and unchanged when the YAML is edited."""
    return ID_PREFIX + slug(path.stem)


@dataclass(frozen=True)
class TemplateError:
    """One problem in one template file, located for a human (``path:line: message``)."""

    path: Path
    """The YAML file as the folder was given (``templates/nda.yaml``), not resolved."""
    line: int
    """1-based line in the YAML; 1 when the problem concerns the file as a whole."""
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class TemplateRole:
    """One recipient slot. Recipients given on envelope creation fill the roles in the order
    of :attr:`Template.roles`."""

    name: str
    """Shown to the sender ("Disclosing Party"); unique within the template, ignoring case."""
    role: str
    """The envelope role the recipient gets: SIGNER, APPROVER, VIEWER or CARBON_COPY."""
    order: int
    """Routing group (from 1) for a SEQUENTIAL template: equal orders act in parallel. The
    YAML's ``order`` or, when absent, the role's position; always 1 in a PARALLEL template."""


@dataclass(frozen=True)
class TemplateField:
    """A field for one role, in Certyneo's ``EnvelopeField`` terms minus the recipient."""

    role_index: int
    """Index in :attr:`Template.roles` of the role that fills this field."""
    field_type: str
    page_number: int
    """1-based page; with an anchor, only the fallback."""
    x: float
    """Points from the left edge; with an anchor, only the fallback."""
    y: float
    """Points from the TOP edge; with an anchor, only the fallback."""
    width: float
    height: float
    anchor_text: str | None
    """Phrase the field is placed next to; checked to be in the document at load time."""
    anchor_placement: str
    """right, below, above or left of the anchor."""
    anchor_index: int
    """Which occurrence of the anchor (from 0); checked to exist at load time."""
    required: bool
    label: str | None
    options: tuple[str, ...]
    """Choices of a DROPDOWN or RADIO_GROUP; empty for the other types."""
    document_index: int = 0
    """Index in :attr:`Template.documents` of the document carrying the field."""


@dataclass(frozen=True)
class Template:
    """A validated template: everything needed to create an envelope from it."""

    id: str
    """``tpl_`` + the slug of the YAML's file name."""
    name: str
    description: str
    path: Path
    """The YAML file."""
    documents: tuple[Path, ...]
    """The PDFs, in envelope order; each exists, is readable and not encrypted."""
    roles: tuple[TemplateRole, ...]
    fields: tuple[TemplateField, ...]
    default_subject: str
    """The YAML's ``subject``, or the template's name when it has none."""
    default_message: str | None
    signing_order: str
    """PARALLEL or SEQUENTIAL."""
    reminders: tuple[int, int] | None
    """(every N days, at most M reminders), or None for the account's default."""
    expires_in_days: int | None
    approval_required: bool
    """The sender must get approval before the envelope goes out (the Slack bot's step)."""
    approver_role: str | None
    """Name of the APPROVER role whose recipient gives that approval, or None when whoever
    sends chooses the approver (the bot's ``approver`` setting, or the requester)."""
    bot: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    """The YAML's ``bot:`` block as written: the Slack bot's settings, ignored by the
    service (checked only to be a mapping)."""

    @property
    def signer_count(self) -> int:
        """SIGNER roles only: Certyneo's ``signerCount`` counts people who sign, and an
        approver, viewer or carbon copy signs nothing."""
        return sum(1 for r in self.roles if r.role == Role.SIGNER.value)

    def fields_for(self, role_index: int) -> tuple[TemplateField, ...]:
        return tuple(f for f in self.fields if f.role_index == role_index)
