"""Fine-tuning job shapes: the create body, and jobs, events and checkpoints as
`openai.types.fine_tuning` defines them (status `paused` as the live API returns it)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from openrft.store import CheckpointRow, JobEventRow, JobRow, RolloutRow

__all__ = [
    "Integration",
    "JobCreate",
    "checkpoint_object",
    "event_object",
    "job_object",
    "rollout_object",
]


class WandbSettings(BaseModel):
    """`openai.types.fine_tuning.FineTuningJobWandbIntegration`: `name` defaults to the job
    id when the run is made; the stored settings keep what the request said."""

    model_config = ConfigDict(extra="forbid")

    project: str = Field(min_length=1)
    name: str | None = None
    entity: str | None = None
    tags: list[Annotated[str, Field(min_length=1)]] | None = None


class Integration(BaseModel):
    """`FineTuningJobWandbIntegrationObject`, the only integration type OpenAI defines."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["wandb"]
    wandb: WandbSettings


class JobCreate(BaseModel):
    """`POST /v1/fine_tuning/jobs`; Bedrock's body is the same with `method` from extra_body."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    training_file: str = Field(min_length=1)
    validation_file: str | None = None
    suffix: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    seed: Annotated[int, Field(ge=0, le=2_147_483_647)] | None = None
    metadata: dict[str, str] | None = None
    integrations: list[Integration] | None = None
    method: dict[str, Any] | None = None
    hyperparameters: dict[str, Any] | None = None

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return value
        if len(value) > 16:
            raise ValueError("at most 16 keys")
        for k, v in value.items():
            if len(k) > 64 or len(v) > 512:
                raise ValueError("keys are at most 64 characters and values at most 512")
        return value

    @field_validator("integrations")
    @classmethod
    def _one_run_per_type(cls, value: list[Integration] | None) -> list[Integration] | None:
        # A job's metrics go to one run; two wandb entries would log every step twice.
        if value is not None and len({i.type for i in value}) < len(value):
            raise ValueError("at most one integration of each type")
        return value


def _top_level_hyperparameters(method: dict[str, Any]) -> dict[str, Any]:
    hp = method.get(method["type"], {}).get("hyperparameters", {})
    return {k: hp.get(k, "auto") for k in ("batch_size", "learning_rate_multiplier", "n_epochs")}


def job_object(row: JobRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "fine_tuning.job",
        "created_at": row.created_at,
        "error": row.error,
        "fine_tuned_model": row.fine_tuned_model,
        "finished_at": row.finished_at,
        "hyperparameters": _top_level_hyperparameters(row.method),
        "model": row.model,
        "organization_id": row.project,
        "result_files": row.result_files or [],
        "seed": row.seed,
        "status": row.status,
        "trained_tokens": row.trained_tokens,
        "training_file": row.training_file,
        "validation_file": row.validation_file,
        "estimated_finish": row.estimated_finish,
        "integrations": row.integrations or [],
        "metadata": row.job_metadata,
        "method": row.method,
        "user_provided_suffix": row.suffix,
    }


def event_object(row: JobEventRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "fine_tuning.job.event",
        "created_at": row.created_at,
        "level": row.level,
        "message": row.message,
        "type": row.type,
        "data": row.data if row.data is not None else {},
    }


def checkpoint_object(row: CheckpointRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "fine_tuning.job.checkpoint",
        "created_at": row.created_at,
        "fine_tuned_model_checkpoint": row.model_id,
        "fine_tuning_job_id": row.job_id,
        "metrics": row.metrics,
        "step_number": row.step_number,
    }


def rollout_object(row: RolloutRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "fine_tuning.job.rollout",
        "created_at": row.created_at,
        "fine_tuning_job_id": row.job_id,
        **row.data,
        "step": row.step,
        "reward": row.reward,
    }
