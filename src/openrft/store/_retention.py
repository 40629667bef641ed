"""Deleting what a user deletes, with its bytes, and expiring what has lived its time.

Rows go first, in one transaction, then the blobs: a crash between the two leaves
only unreferenced bytes, which `openrft gc` finds, never a row without its bytes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import delete, select

from openrft.errors import Conflict, InvalidRequest, PermissionDenied
from openrft.store._blob_store import BlobStore
from openrft.store._db import Database
from openrft.store._files import FileRepository
from openrft.store._ids import now
from openrft.store._jobs import TERMINAL, JobRepository
from openrft.store._models import ModelRepository
from openrft.store._projects import ProjectLimits, ProjectRepository
from openrft.store._tables import (
    CheckpointRow,
    FileRow,
    JobEventRow,
    JobRow,
    ModelRow,
    RolloutRow,
)

__all__ = ["Retention", "SweepReport"]


@dataclass(frozen=True)
class SweepReport:
    files: int
    rollouts: int


class Retention:
    def __init__(
        self,
        *,
        db: Database,
        blobs: BlobStore,
        files: FileRepository,
        models: ModelRepository,
        jobs: JobRepository,
        projects: ProjectRepository,
    ) -> None:
        self._db = db
        self._blobs = blobs
        self._files = files
        self._models = models
        self._jobs = jobs
        self._projects = projects

    # -- deleting ---------------------------------------------------------------------
    def delete_model(self, project: str, model_id: str) -> ModelRow:
        """Delete a fine-tuned model or checkpoint and its weights. The row stays, marked
        deleted, so the id is never reused; a checkpoint's state goes with its weights."""
        row = self._models.get(project, model_id)
        if row.project is None:
            raise PermissionDenied(
                f"Base model '{model_id}' cannot be deleted through the API", param="model"
            )
        job = self._job_of(row)
        if job is not None and job.status not in TERMINAL:
            raise InvalidRequest(
                f"Cannot delete '{model_id}' while its job {job.id} is {job.status!r}; "
                "cancel the job first.",
                param="model",
            )
        self._refuse_if_needed({model_id}, exclude_job=None)
        with self._db.session() as s:
            live = s.get(ModelRow, row.seq)
            assert live is not None
            live.deleted = True
            key = live.source
            for ckpt in s.scalars(select(CheckpointRow).where(CheckpointRow.model_id == model_id)):
                ckpt.pruned = True
                key = ckpt.blob_key  # model/ and the resume state beside it
        self._blobs.delete(key)
        return row

    def delete_job(self, project: str, job_id: str) -> JobRow:
        """Delete a finished job with its events, checkpoints, rollouts, models, result
        files and every blob under `jobs/<id>/` (an openrft extension)."""
        job = self._jobs.get(project, job_id)
        if job.status not in TERMINAL:
            raise InvalidRequest(
                f"Cannot delete a job whose status is {job.status!r}; cancel it first.",
                param="fine_tuning_job_id",
            )
        if job.lease_token is not None and (job.lease_expires_at or 0) > time.time():
            # Cancelled, but its worker has not noticed yet: it may still write a row.
            raise Conflict(
                f"The worker of job {job_id} is still stopping; try again in a few seconds.",
                param="fine_tuning_job_id",
            )
        with self._db.session() as s:
            models = set(s.scalars(select(ModelRow.id).where(ModelRow.job_id == job_id)))
        self._refuse_if_needed(models, exclude_job=job_id)
        results = list(job.result_files or [])
        with self._db.session() as s:
            result_keys = list(
                s.scalars(
                    select(FileRow.blob_key).where(
                        FileRow.id.in_(results), FileRow.project == project
                    )
                )
            )
            s.execute(delete(FileRow).where(FileRow.id.in_(results), FileRow.project == project))
            for table in (JobEventRow, CheckpointRow, RolloutRow, ModelRow):
                s.execute(delete(table).where(table.job_id == job_id))
            s.execute(delete(JobRow).where(JobRow.id == job_id))
        self._blobs.delete(f"jobs/{job_id}")
        for key in result_keys:
            self._blobs.delete(key)
        return job

    def _job_of(self, row: ModelRow) -> JobRow | None:
        with self._db.session() as s:
            return s.scalar(select(JobRow).where(JobRow.id == row.job_id)) if row.job_id else None

    def _refuse_if_needed(self, model_ids: set[str], *, exclude_job: str | None) -> None:
        """A model still needed elsewhere is kept: a LoRA model trained on it is served on
        its weights (Decision 4), and an unfinished job trains from it."""
        if not model_ids:
            return
        with self._db.session() as s:
            children = s.scalars(
                select(ModelRow).where(
                    ModelRow.deleted.is_(False), ModelRow.weights_format == "adapter"
                )
            )
            users = [
                m.id
                for m in children
                if (m.details or {}).get("parent") in model_ids
                and (exclude_job is None or m.job_id != exclude_job)
            ]
            jobs = s.scalars(
                select(JobRow.id).where(JobRow.model.in_(model_ids), JobRow.status.not_in(TERMINAL))
            )
            users += [f"job {j}" for j in jobs]
        if users:
            raise Conflict(
                f"{', '.join(sorted(model_ids))} cannot be deleted: "
                f"{', '.join(users)} depend on it; delete those first.",
                param="model",
            )

    # -- expiring ---------------------------------------------------------------------
    def sweep(self, defaults: ProjectLimits) -> SweepReport:
        """Delete expired files and the rollouts older than their project's retention."""
        files = self._files.sweep_expired()
        return SweepReport(files=len(files), rollouts=self._sweep_rollouts(defaults))

    def _sweep_rollouts(self, defaults: ProjectLimits) -> int:
        with self._db.session() as s:
            projects = list(s.scalars(select(JobRow.project).distinct()))
        deleted = 0
        for project in projects:
            days = self._projects.limits(project, defaults).rollout_retention_days
            if days is None:
                continue
            jobs = select(JobRow.id).where(JobRow.project == project)
            with self._db.session() as s:
                deleted += s.execute(
                    delete(RolloutRow).where(
                        RolloutRow.job_id.in_(jobs), RolloutRow.created_at < now() - days * 86_400
                    )
                ).rowcount
        return deleted
