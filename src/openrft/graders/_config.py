"""Settings of the graders library, validated once here (STYLE anti-pattern 1).

`openrft.config` builds one of these from the server's flags and environment;
tests build them directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["GraderSettings"]


def _default_workers() -> int:
    # Decision 11: the grader pool is sized to the cores left to it.
    return max(1, min(4, (os.cpu_count() or 2)))


@dataclass(frozen=True, kw_only=True)
class GraderSettings:
    """How graders reach the outside world and how hard the Python sandbox is.

    Parameters:
        request_timeout_s: timeout of one HTTP call (lambda, endpoint, judge).
        max_retries: extra attempts after a connection error, timeout, 5xx or 429.
        retry_backoff_s: first backoff; doubles each retry up to `retry_backoff_max_s`.
        max_concurrency: outbound calls and sandbox batches in flight per service.
        remote_batch_size: trajectories per lambda/endpoint request.
        judge_base_url: OpenAI-compatible `/v1` base for score_model/label_model.
        judge_api_key: bearer key sent to the judge; never echoed.
        url_allowlist / url_denylist: hosts or CIDRs overriding Decision 8's default.
        allow_unsandboxed_python: run python graders without namespaces when the
            sandbox cannot be set up (single-user machines only, Decision 7).
        python_workers: long-lived sandbox worker processes.
        python_batch_size: samples sent to a worker per round trip.
        python_timeout_s: wall-clock limit for one sample's `grade` call.
        python_startup_timeout_s: limit for a worker to come up.
        python_memory_mb: RLIMIT_AS of a worker.
        python_cpu_s: RLIMIT_CPU of a worker over its life; it is recycled before.
        python_file_size_mb: RLIMIT_FSIZE of a worker.
        python_disk_mb: size of the private tmpfs a worker may write.
        python_max_processes: RLIMIT_NPROC of the sandbox user.
        python_source_max_bytes: largest accepted `source` (OpenAI: under 256 kB).
        sandbox_user: unprivileged account the sandbox switches to.
        hidden_paths: folders (the server's data folder) masked inside the sandbox.
        embedding_model: local embedding model enabling `cosine`; None refuses it.
    """

    request_timeout_s: float = 30.0
    max_retries: int = 3
    retry_backoff_s: float = 0.5
    retry_backoff_max_s: float = 8.0
    max_concurrency: int = 64
    remote_batch_size: int = 32
    judge_base_url: str | None = None
    judge_api_key: str | None = None
    url_allowlist: tuple[str, ...] = ()
    url_denylist: tuple[str, ...] = ()
    allow_unsandboxed_python: bool = False
    python_workers: int = _default_workers()
    python_batch_size: int = 64
    python_timeout_s: float = 60.0
    python_startup_timeout_s: float = 30.0
    python_memory_mb: int = 2048
    python_cpu_s: int = 3600
    python_file_size_mb: int = 64
    python_disk_mb: int = 256
    python_max_processes: int = 64
    python_source_max_bytes: int = 256 * 1024
    sandbox_user: str = "nobody"
    hidden_paths: tuple[str, ...] = ()
    embedding_model: str | None = None

    def __post_init__(self) -> None:
        positive = {
            "request_timeout_s": self.request_timeout_s,
            "max_concurrency": self.max_concurrency,
            "remote_batch_size": self.remote_batch_size,
            "python_workers": self.python_workers,
            "python_batch_size": self.python_batch_size,
            "python_timeout_s": self.python_timeout_s,
            "python_startup_timeout_s": self.python_startup_timeout_s,
            "python_memory_mb": self.python_memory_mb,
            "python_cpu_s": self.python_cpu_s,
            "python_file_size_mb": self.python_file_size_mb,
            "python_disk_mb": self.python_disk_mb,
            "python_max_processes": self.python_max_processes,
            "python_source_max_bytes": self.python_source_max_bytes,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"GraderSettings.{name} must be positive, got {value!r}")
        if self.max_retries < 0 or self.retry_backoff_s < 0:
            raise ValueError("GraderSettings.max_retries and retry_backoff_s must be >= 0")
