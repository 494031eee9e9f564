"""Request models of the envelope API (Certyneo's ``CreateEnvelopeRequest`` and friends).

Separate from the tables: these describe what a client may send, in camelCase, with the
limits that keep hostile input out (sizes, counts, schemes). Unknown members are ignored, as
Certyneo's clients (Power Automate, n8n) send extra ones.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from bot import locales
from bot.envelopes.category import CATEGORIES
from bot.envelopes.lifecycle import Role, SigningOrder
from bot.timeutil import to_utc
from bot.validation import Line, Text, check_email

MAX_RECIPIENTS = 100
MAX_DOCUMENTS = 20
MAX_FIELDS = 500
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")

Category = StrEnum("Category", {c: c for c in CATEGORIES})  # type: ignore[misc]


class FieldType(StrEnum):
    SIGNATURE = "SIGNATURE"
    INITIALS = "INITIALS"
    DATE_SIGNED = "DATE_SIGNED"
    TEXT = "TEXT"
    CHECKBOX = "CHECKBOX"
    DROPDOWN = "DROPDOWN"
    RADIO_GROUP = "RADIO_GROUP"
    ATTACHMENT = "ATTACHMENT"
    STAMP = "STAMP"
    DRAWING = "DRAWING"


UNSUPPORTED_FIELD_TYPES = {FieldType.ATTACHMENT, FieldType.STAMP, FieldType.DRAWING}


class _In(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        str_strip_whitespace=True,
        allow_inf_nan=False,
    )


class RecipientIn(_In):
    email: str = Field(max_length=320)
    name: Line | None = Field(default=None, max_length=255)
    role: Role = Role.SIGNER
    order: int | None = Field(default=None, ge=1, le=1000)
    phone: str | None = Field(default=None, max_length=32)
    authentication: Literal["NONE", "EMAIL_OTP"] | None = None
    locale: str | None = Field(default=None, max_length=35)

    _email = field_validator("email")(classmethod(lambda cls, v: check_email(v)))

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        compact = re.sub(r"[\s().-]", "", value)
        if not _PHONE.match(compact):
            raise ValueError("must be an international number such as +33612345678")
        return compact

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str | None) -> str | None:
        return locales.canonical(value) if value else None


class FieldIn(_In):
    recipient_email: str = Field(max_length=320)
    document_index: int = Field(default=0, ge=0, lt=MAX_DOCUMENTS)
    page_number: int = Field(default=1, ge=1, le=10000)
    field_type: FieldType = FieldType.SIGNATURE
    anchor_text: Line | None = Field(default=None, max_length=200)
    anchor_placement: Literal["right", "below", "above", "left"] = "right"
    anchor_index: int = Field(default=0, ge=0, le=1000)
    x: float = Field(default=72, ge=0, le=14400)
    y: float = Field(default=700, ge=0, le=14400)
    width: float = Field(default=150, gt=0, le=14400)
    height: float = Field(default=40, gt=0, le=14400)
    required: bool = True
    label: Line | None = Field(default=None, max_length=200)
    options: list[Annotated[Line, Field(max_length=200)]] = Field(
        default_factory=list, max_length=100
    )

    _email = field_validator("recipient_email")(classmethod(lambda cls, v: check_email(v)))

    @field_validator("field_type")
    @classmethod
    def _supported(cls, value: FieldType) -> FieldType:
        if value in UNSUPPORTED_FIELD_TYPES:
            raise ValueError(
                f"{value.value} fields are not supported yet; use SIGNATURE, INITIALS, "
                "DATE_SIGNED, TEXT, CHECKBOX, DROPDOWN or RADIO_GROUP"
            )
        return value

    @model_validator(mode="after")
    def _options(self) -> FieldIn:
        if self.field_type in (FieldType.DROPDOWN, FieldType.RADIO_GROUP) and not self.options:
            raise ValueError(f"a {self.field_type.value} field needs options")
        return self


class RemindersIn(_In):
    """Extension: reminder emails to whoever still has to act, every ``intervalDays`` days,
    at most ``maxCount`` times. ``intervalDays: 0`` sends none. Default: the account's."""

    interval_days: int = Field(ge=0, le=365)
    max_count: int = Field(default=3, ge=0, le=50)


class _EnvelopeBody(_In):
    """Members shared by create and update."""

    reminders: RemindersIn | None = None

    message: Text | None = Field(default=None, max_length=10000)
    document_ids: list[Annotated[Line, Field(max_length=40)]] | None = Field(
        default=None, max_length=MAX_DOCUMENTS
    )
    fields: list[FieldIn] | None = Field(default=None, max_length=MAX_FIELDS)
    recipients: list[RecipientIn] | None = Field(default=None, max_length=MAX_RECIPIENTS)
    signing_order: SigningOrder | None = None
    signature_level: Literal["SIMPLE", "ADVANCED", "QUALIFIED"] | None = None
    expires_at: datetime | None = None
    send_at: datetime | None = None
    category: Category | None = None  # type: ignore[valid-type]
    tags: list[Annotated[Line, Field(max_length=40)]] | None = Field(default=None, max_length=10)
    locale: str | None = Field(default=None, max_length=35)
    redirect_url: Line | None = Field(default=None, max_length=2048)
    initials_on_every_page: bool | None = None
    workspace_id: Line | None = Field(default=None, max_length=40)
    metadata: dict[str, Any] | None = None

    @field_validator("expires_at", "send_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """Times are kept in UTC; one that cannot be expressed there is out of range."""
        if value is None:
            return None
        try:
            return to_utc(value)
        except (OverflowError, ValueError):
            raise ValueError("is out of range") from None

    @field_validator("signature_level")
    @classmethod
    def _level(cls, value: str | None) -> str | None:
        if value in ("ADVANCED", "QUALIFIED"):
            raise ValueError(f"{value} signatures are not supported yet; use SIMPLE (the default)")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        out: list[str] = []
        for tag in value:
            tag = tag.strip().lower()
            if tag and tag not in out:
                out.append(tag)
        return out

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str | None) -> str | None:
        return locales.canonical(value) if value else None

    @field_validator("redirect_url")
    @classmethod
    def _redirect(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not re.match(r"^https://[^\s/?#@]+(?:[/?#][^\s]*)?$", value):
            raise ValueError("must be an https:// URL")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        if len(value) > 50:
            raise ValueError("at most 50 keys")

        try:
            encoded = json.dumps(value, default=str, allow_nan=False)
        except ValueError:
            raise ValueError("numbers must be finite (no NaN or Infinity)") from None
        if len(encoded) > 16384:
            raise ValueError("at most 16 KB of JSON")
        return value


class LegacyDocument(_In):
    name: Line | None = Field(default=None, max_length=255)
    base64_pdf: str = Field(alias="base64Pdf")


class CreateEnvelopeIn(_EnvelopeBody):
    subject: Line | None = Field(default=None, max_length=255)
    template_id: Line | None = Field(default=None, max_length=80)
    signers: list[RecipientIn] | None = Field(default=None, max_length=MAX_RECIPIENTS)
    """The older one-shot form: creates and sends, answering ``signers[].signUrl``."""
    documents: list[LegacyDocument] | None = Field(default=None, max_length=MAX_DOCUMENTS)

    @property
    def is_legacy(self) -> bool:
        return self.signers is not None or self.documents is not None


class UpdateEnvelopeIn(_EnvelopeBody):
    subject: Line | None = Field(default=None, min_length=1, max_length=255)


class VoidIn(_In):
    reason: Text | None = Field(default=None, max_length=1000)
