"""Project quotas, checked where a request would go past one.

Both answer 429 `insufficient_quota` (OpenAI's answer to an exhausted quota) with
code `quota_exceeded`, and the message names the quota, its limit and the usage, so
the user knows what to delete or whom to ask.
"""

from __future__ import annotations

from openrft.config import Settings
from openrft.errors import QuotaExceeded
from openrft.store import ProjectLimits, Store

__all__ = ["check_concurrent_jobs", "check_storage", "project_limits"]


def project_limits(store: Store, project: str, settings: Settings) -> ProjectLimits:
    return store.projects.limits(project, ProjectLimits.defaults(settings))


def check_storage(store: Store, project: str, settings: Settings, *, adding: int) -> None:
    """Refuse `adding` more bytes past the project's `max_storage_bytes`."""
    limit = project_limits(store, project, settings).max_storage_bytes
    if limit is None:
        return
    used = store.projects.storage_used(project)
    if used + adding > limit:
        raise QuotaExceeded(
            f"Storage quota (max_storage_bytes) exceeded for project '{project}': it uses "
            f"{used} of its {limit} bytes, and this upload of {adding} bytes does not fit. "
            "Delete files, models or jobs, or ask an administrator to raise the quota.",
            param="file",
        )


def check_concurrent_jobs(store: Store, project: str, settings: Settings) -> None:
    """Refuse a new job while the project has `max_concurrent_jobs` jobs not finished."""
    limit = project_limits(store, project, settings).max_concurrent_jobs
    if limit is None:
        return
    active = store.projects.active_jobs(project)
    if active >= limit:
        raise QuotaExceeded(
            f"Concurrent jobs quota (max_concurrent_jobs) exceeded for project '{project}': "
            f"{active} of its limit of {limit} jobs are not finished "
            "(validating_files, queued, running or paused). Wait for one to finish, or "
            "cancel one.",
        )
