"""Projects: per-project quotas (storage bytes, concurrent jobs) and retention.

A project exists as soon as a key, file or job names it; a row in `projects` only
overrides the server-wide defaults (`Settings.default_*`), column by column.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import func, select

from openrft.config import SETTABLE, ProjectLimits
from openrft.store._blob_store import BlobStore
from openrft.store._db import Database
from openrft.store._tables import ApiKeyRow, FileRow, JobRow, ProjectRow

__all__ = ["ACTIVE", "ProjectLimits", "ProjectRepository"]

# Job statuses that hold a concurrent-jobs slot: everything not finished.
ACTIVE = ("validating_files", "queued", "running", "paused")


class ProjectRepository:
    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self._db = db
        self._blobs = blobs

    def get(self, name: str) -> ProjectRow | None:
        with self._db.session() as s:
            return s.get(ProjectRow, name)

    def set(self, name: str, **values: Any) -> ProjectRow:
        """Set the given columns (None clears one back to the server default)."""
        unknown = set(values) - set(SETTABLE)
        if unknown:
            raise ValueError(f"unknown project settings: {sorted(unknown)}")
        with self._db.session() as s:
            row = s.get(ProjectRow, name)
            if row is None:
                row = ProjectRow(name=name)
                s.add(row)
            for key, value in values.items():
                setattr(row, key, value)
        return row

    def names(self) -> list[str]:
        """Every project something names: settings rows, keys, files and jobs."""
        with self._db.session() as s:
            found: set[str] = set(s.scalars(select(ProjectRow.name)))
            for column in (ApiKeyRow.project, FileRow.project, JobRow.project):
                found.update(s.scalars(select(column).distinct()))
        return sorted(found)

    def limits(self, name: str, defaults: ProjectLimits) -> ProjectLimits:
        row = self.get(name)
        if row is None:
            return defaults
        overrides = {k: getattr(row, k) for k in SETTABLE if getattr(row, k) is not None}
        return replace(defaults, **overrides)

    def storage_used(self, name: str) -> int:
        """Bytes the project holds: its files (from their rows) plus its jobs' weights and
        checkpoints (summed on disk: a stat per blob file, cheap at the sizes that matter)."""
        with self._db.session() as s:
            file_bytes = s.scalar(select(func.sum(FileRow.bytes)).where(FileRow.project == name))
            job_ids = list(s.scalars(select(JobRow.id).where(JobRow.project == name)))
        return int(file_bytes or 0) + sum(self._blobs.size(f"jobs/{j}") for j in job_ids)

    def active_jobs(self, name: str) -> int:
        with self._db.session() as s:
            count = s.scalar(
                select(func.count()).where(JobRow.project == name, JobRow.status.in_(ACTIVE))
            )
        return int(count or 0)
