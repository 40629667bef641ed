"""The tables. Every object row carries the project that owns it.

`seq` is a monotonic integer that orders rows created in the same second, so
cursor pagination (`after=<id>`) is stable.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["ApiKeyRow", "Base", "FileRow", "ModelRow"]


class Base(DeclarativeBase):
    pass


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project: Mapped[str] = mapped_column(String(128), index=True)
    # sha256 of the key: keys are 256-bit random strings, so a fast hash is enough.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int | None] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger)


class FileRow(Base):
    __tablename__ = "files"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    project: Mapped[str] = mapped_column(String(128), index=True)
    filename: Mapped[str] = mapped_column(String(1024))
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int | None] = mapped_column(BigInteger)
    blob_key: Mapped[str] = mapped_column(String(256))
    # For fine-tune files: supervised / reinforcement / preference, and the example count.
    kind: Mapped[str | None] = mapped_column(String(32))
    examples: Mapped[int | None] = mapped_column(Integer)


class ModelRow(Base):
    """A base model (project NULL: visible to every project), fine-tuned model or checkpoint."""

    __tablename__ = "models"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(512), unique=True)
    project: Mapped[str | None] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # base | fine-tuned | checkpoint
    created_at: Mapped[int] = mapped_column(BigInteger)
    owned_by: Mapped[str] = mapped_column(String(128))
    # A Hugging Face id or local folder for base models; a blob key for trained weights.
    source: Mapped[str] = mapped_column(Text)
    base_model: Mapped[str | None] = mapped_column(String(512))
    job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # "adapter" (PEFT LoRA folder on top of base_model) or "full" (complete weights).
    weights_format: Mapped[str | None] = mapped_column(String(16))
    details: Mapped[dict | None] = mapped_column(JSON)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
