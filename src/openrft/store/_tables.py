"""The tables. Every object row carries the project that owns it.

`seq` is a monotonic integer that orders rows created in the same second, so
cursor pagination (`after=<id>`) is stable.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ApiKeyRow",
    "Base",
    "CheckpointRow",
    "FileRow",
    "JobEventRow",
    "JobRow",
    "ModelRow",
    "ProjectRow",
    "RolloutRow",
]


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


class JobRow(Base):
    """A fine-tuning job, plus the scheduler's lease on it."""

    __tablename__ = "jobs"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    project: Mapped[str] = mapped_column(String(128), index=True)
    model: Mapped[str] = mapped_column(String(512))
    base_model: Mapped[str] = mapped_column(String(512))
    training_file: Mapped[str] = mapped_column(String(64))
    validation_file: Mapped[str | None] = mapped_column(String(64))
    suffix: Mapped[str | None] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(BigInteger)
    job_metadata: Mapped[dict | None] = mapped_column("metadata", JSON)
    integrations: Mapped[list | None] = mapped_column(JSON)
    # OpenAI's `method` object; hyperparameters inside it are replaced by resolved values
    # once the job runs.
    method: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(32), index=True)
    error: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[int | None] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger)
    estimated_finish: Mapped[int | None] = mapped_column(BigInteger)
    fine_tuned_model: Mapped[str | None] = mapped_column(String(512))
    trained_tokens: Mapped[int | None] = mapped_column(BigInteger)
    result_files: Mapped[list] = mapped_column(JSON, default=list)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    # "cancel" or "pause", set by the API and acted on by the worker within a step.
    control: Mapped[str | None] = mapped_column(String(16))
    lease_token: Mapped[str | None] = mapped_column(String(64))
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class JobEventRow(Base):
    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "dedupe_key"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    level: Mapped[str] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict | None] = mapped_column(JSON)
    # The training step an event belongs to: a resumed job drops events past its checkpoint.
    step: Mapped[int | None] = mapped_column(Integer)
    # Events that must appear once per job ("Fine-tuning job started", "Step 3/40") carry a key.
    dedupe_key: Mapped[str | None] = mapped_column(String(128))


class CheckpointRow(Base):
    __tablename__ = "job_checkpoints"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    step_number: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[int] = mapped_column(BigInteger)
    metrics: Mapped[dict] = mapped_column(JSON)
    model_id: Mapped[str] = mapped_column(String(512))
    blob_key: Mapped[str] = mapped_column(String(256))
    # Pruned checkpoints keep their row (the model id stays reserved) but lose their bytes.
    pruned: Mapped[bool] = mapped_column(Boolean, default=False)


class RolloutRow(Base):
    """A sampled completion kept for people to read, with its reward and grader details."""

    __tablename__ = "job_rollouts"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    step: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[int] = mapped_column(BigInteger)
    reward: Mapped[float] = mapped_column(Float)
    data: Mapped[dict] = mapped_column(JSON)


class ProjectRow(Base):
    """Per-project quotas and retention; a project without a row, or a NULL column, gets
    the server-wide default (no limit where the server sets none)."""

    __tablename__ = "projects"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    max_storage_bytes: Mapped[int | None] = mapped_column(BigInteger)
    max_concurrent_jobs: Mapped[int | None] = mapped_column(Integer)
    rollout_retention_days: Mapped[int | None] = mapped_column(Integer)
    keep_checkpoints: Mapped[int | None] = mapped_column(Integer)
