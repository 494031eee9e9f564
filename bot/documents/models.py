"""The documents table."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from bot.timeutil import utcnow


class Document(SQLModel, table=True):
    """An uploaded file. Images are described by the original (type, size, hash); the PDF made
    from them is kept beside it with its own hash, which the audit trail cites."""

    __tablename__ = "documents"

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(foreign_key="accounts.id", index=True, max_length=40)
    environment: str = Field(max_length=8)
    name: str = Field(max_length=255)
    filename: str = Field(max_length=255)
    mime_type: str = Field(max_length=64)
    size: int
    sha256: str = Field(max_length=64)
    page_count: int
    status: str = Field(default="UPLOADED", max_length=20)
    storage_key: str = Field(max_length=200)
    pdf_storage_key: str = Field(max_length=200)
    pdf_sha256: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, index=True)
