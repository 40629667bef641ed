"""Fine-tuning jobs: rows, leases, control requests, events and checkpoints.

A job is leased to one executor at a time: the lease is a token plus an expiry that
the worker keeps fresh. Every lease change is a conditional UPDATE whose row count
says who won, so two schedulers (or a stale worker) can never both own a job. On
PostgreSQL, where several servers share the jobs, schedulers take candidates with
`SELECT ... FOR UPDATE SKIP LOCKED`: each locks different rows instead of all racing
for the oldest one.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError

from openrft.errors import InvalidRequest, NotFound
from openrft.store._db import Database
from openrft.store._ids import new_id, now
from openrft.store._pages import Page, paginate
from openrft.store._tables import CheckpointRow, JobEventRow, JobRow, ModelRow, RolloutRow

__all__ = ["TERMINAL", "JobRepository"]

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
_RUNNABLE = ("queued", "running")


def _leasable(t: float) -> Select[tuple[JobRow]]:
    """Jobs that want a worker: queued, or running with a lease not renewed by time `t`."""
    return (
        select(JobRow)
        .where(JobRow.status.in_(_RUNNABLE))
        .where((JobRow.lease_expires_at.is_(None)) | (JobRow.lease_expires_at < t))
    )


def _new_lease(owner: str, ttl: float) -> dict[str, Any]:
    """The lease columns a winning scheduler writes; `attempts` also rises by one."""
    return {
        "lease_token": new_id("lease_", 16),
        "lease_owner": owner,
        "lease_expires_at": time.time() + ttl,
    }


def _hold(job: JobRow, lease: dict[str, Any]) -> JobRow:
    """Set `lease` and the next attempt on `job` (a flush writes them on a tracked row)."""
    for column, value in lease.items():
        setattr(job, column, value)
    job.attempts += 1
    return job


def _seq(s: Any, table: Any, object_id: str, scope: Any) -> int:
    """The cursor `object_id`'s position, if the row lies in `scope` (its project or job)."""
    seq = s.scalar(select(table.seq).where(table.id == object_id, scope))
    if seq is None:
        raise NotFound(f"No such object: {object_id}", param="after")
    return seq


class JobRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- jobs -------------------------------------------------------------------------
    def create(self, row: JobRow) -> JobRow:
        with self._db.session() as s:
            s.add(row)
        return row

    def get(self, project: str, job_id: str) -> JobRow:
        with self._db.session() as s:
            row = s.scalar(select(JobRow).where(JobRow.id == job_id, JobRow.project == project))
        if row is None:
            raise NotFound(f"No such fine-tuning job: {job_id}", param="fine_tuning_job_id")
        return row

    def by_id(self, job_id: str) -> JobRow:
        with self._db.session() as s:
            row = s.scalar(select(JobRow).where(JobRow.id == job_id))
        if row is None:
            raise NotFound(f"No such fine-tuning job: {job_id}", param="fine_tuning_job_id")
        return row

    def list(
        self, project: str, *, limit: int, after: str | None, metadata: dict[str, str]
    ) -> Page[JobRow]:
        with self._db.session() as s:
            query = select(JobRow).where(JobRow.project == project)
            for key, value in metadata.items():
                query = query.where(JobRow.job_metadata[key].as_string() == value)
            after_seq = _seq(s, JobRow, after, JobRow.project == project) if after else None
            return paginate(
                s, query, seq_column=JobRow.seq, after_seq=after_seq, limit=limit, descending=True
            )

    def update(self, job_id: str, *, token: str | None = None, **fields: Any) -> bool:
        """Update a job that is not finished (and, with `token`, still leased by the caller)."""
        query = update(JobRow).where(JobRow.id == job_id, JobRow.status.not_in(TERMINAL))
        if token is not None:
            query = query.where(JobRow.lease_token == token)
        with self._db.session() as s:
            return s.execute(query.values(**fields)).rowcount == 1

    def request(self, project: str, job_id: str, action: str) -> JobRow:
        """Apply cancel / pause / resume as the API asks; the worker acts within a step."""
        job = self.get(project, job_id)
        allowed = {
            "cancel": {"validating_files", "queued", "running", "paused"},
            "pause": {"queued", "running"},
            "resume": {"paused"},
        }[action]
        if job.status not in allowed:
            raise InvalidRequest(
                f"Cannot {action} a job whose status is {job.status!r}.", param="fine_tuning_job_id"
            )
        fields: dict[str, Any] = {
            "cancel": {"status": "cancelled", "control": "cancel", "finished_at": now()},
            "pause": {"status": "paused", "control": "pause"},
            "resume": {"status": "queued"},
        }[action]
        with self._db.session() as s:
            changed = s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == job.status)
                .values(**fields)
            ).rowcount
        if not changed:  # the worker moved it meanwhile; let the caller see the truth
            return self.request(project, job_id, action)
        return self.get(project, job_id)

    # -- leases -----------------------------------------------------------------------
    def lease_runnable(self, *, owner: str, ttl: float, limit: int) -> list[tuple[JobRow, str]]:
        """Lease up to `limit` queued jobs, and running ones whose worker stopped renewing."""
        if limit <= 0:
            return []
        if self._db.dialect == "postgresql":
            return self._lease_skip_locked(owner=owner, ttl=ttl, limit=limit)
        t = time.time()
        with self._db.session() as s:
            candidates = list(s.scalars(_leasable(t).order_by(JobRow.seq).limit(limit)))
        won = []
        for job in candidates:
            lease = _new_lease(owner, ttl)
            with self._db.session() as s:
                changed = s.execute(
                    update(JobRow)
                    .where(JobRow.id == job.id, JobRow.status.in_(_RUNNABLE))
                    .where((JobRow.lease_expires_at.is_(None)) | (JobRow.lease_expires_at < t))
                    .values(**lease, attempts=JobRow.attempts + 1)
                ).rowcount
            if changed:  # mirror the row the UPDATE wrote on the caller's copy
                won.append((_hold(job, lease), lease["lease_token"]))
        return won

    def _lease_skip_locked(self, *, owner: str, ttl: float, limit: int) -> list[tuple[JobRow, str]]:
        """Lock the candidates, skipping rows another scheduler holds, and lease them in the
        same transaction. A row locked here is re-read after any concurrent commit, so a job
        leased meanwhile no longer matches and is not taken twice."""
        won = []
        with self._db.session() as s:
            query = _leasable(time.time()).order_by(JobRow.seq).limit(limit)
            for job in s.scalars(query.with_for_update(skip_locked=True)):
                lease = _new_lease(owner, ttl)
                won.append((_hold(job, lease), lease["lease_token"]))
        return won

    def count_by_status(self) -> dict[str, int]:
        with self._db.session() as s:
            rows = s.execute(select(JobRow.status, func.count()).group_by(JobRow.status))
            return {status: count for status, count in rows}

    def heartbeat(self, job_id: str, token: str, ttl: float) -> bool:
        with self._db.session() as s:
            return (
                s.execute(
                    update(JobRow)
                    .where(JobRow.id == job_id, JobRow.lease_token == token)
                    .values(lease_expires_at=time.time() + ttl)
                ).rowcount
                == 1
            )

    def release(self, job_id: str, token: str, **fields: Any) -> None:
        with self._db.session() as s:
            s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.lease_token == token)
                .values(lease_token=None, lease_owner=None, lease_expires_at=None, **fields)
            )

    def jobs_in(self, statuses: tuple[str, ...]) -> list[JobRow]:
        with self._db.session() as s:
            return list(s.scalars(select(JobRow).where(JobRow.status.in_(statuses))))

    # -- events -----------------------------------------------------------------------
    def add_event(
        self,
        job_id: str,
        message: str,
        *,
        level: str = "info",
        type: str = "message",
        data: dict[str, Any] | None = None,
        step: int | None = None,
        dedupe_key: str | None = None,
    ) -> bool:
        """Append an event; one with a `dedupe_key` the job already has is dropped."""
        row = JobEventRow(
            id=new_id("ftevent-"),
            job_id=job_id,
            created_at=now(),
            level=level,
            message=message,
            type=type,
            data=data,
            step=step,
            dedupe_key=dedupe_key,
        )
        try:
            with self._db.session() as s:
                s.add(row)
        except IntegrityError:
            return False
        return True

    def _child_page(
        self, table: Any, job_id: str, *, limit: int, after: str | None, where: tuple = ()
    ) -> Page[Any]:
        """A job's events, checkpoints or rollouts, newest first, after the cursor `after`."""
        with self._db.session() as s:
            after_seq = _seq(s, table, after, table.job_id == job_id) if after else None
            query = select(table).where(table.job_id == job_id, *where)
            return paginate(
                s, query, seq_column=table.seq, after_seq=after_seq, limit=limit, descending=True
            )

    def events(self, job_id: str, *, limit: int, after: str | None) -> Page[JobEventRow]:
        return self._child_page(JobEventRow, job_id, limit=limit, after=after)

    def drop_events_after(self, job_id: str, step: int) -> None:
        """A resumed job redoes the steps past its checkpoint: their events and rollouts go."""
        with self._db.session() as s:
            for table in (JobEventRow, RolloutRow):
                for row in s.scalars(
                    select(table).where(table.job_id == job_id, table.step > step)
                ):
                    s.delete(row)

    # -- rollouts ---------------------------------------------------------------------
    def add_rollouts(self, job_id: str, step: int, rollouts: list[dict[str, Any]]) -> None:
        with self._db.session() as s:
            for data in rollouts:
                s.add(
                    RolloutRow(
                        id=new_id("rollout-"),
                        job_id=job_id,
                        step=step,
                        created_at=now(),
                        reward=float(data.get("reward", 0.0)),
                        data=data,
                    )
                )

    def rollouts(
        self, job_id: str, *, limit: int, after: str | None, step: int | None
    ) -> Page[RolloutRow]:
        where = (RolloutRow.step == step,) if step is not None else ()
        return self._child_page(RolloutRow, job_id, limit=limit, after=after, where=where)

    # -- checkpoints ------------------------------------------------------------------
    def add_checkpoint(self, row: CheckpointRow, model: ModelRow) -> None:
        """The checkpoint and its servable model appear together, or not at all."""
        with self._db.session() as s:
            existing = s.scalar(select(ModelRow).where(ModelRow.id == model.id))
            if existing is not None:  # a step redone after a crash replaces its checkpoint
                s.delete(existing)
                for old in s.scalars(
                    select(CheckpointRow).where(CheckpointRow.model_id == model.id)
                ):
                    s.delete(old)
                s.flush()
            s.add(row)
            s.add(model)

    def checkpoints(
        self, job_id: str, *, limit: int, after: str | None, include_pruned: bool = False
    ) -> Page[CheckpointRow]:
        where = () if include_pruned else (CheckpointRow.pruned.is_(False),)
        return self._child_page(CheckpointRow, job_id, limit=limit, after=after, where=where)

    def latest_checkpoint(self, job_id: str) -> CheckpointRow | None:
        with self._db.session() as s:
            return s.scalar(
                select(CheckpointRow)
                .where(CheckpointRow.job_id == job_id, CheckpointRow.pruned.is_(False))
                .order_by(CheckpointRow.step_number.desc())
                .limit(1)
            )

    def mark_pruned(self, checkpoint_ids: list[str]) -> None:
        if not checkpoint_ids:
            return
        with self._db.session() as s:
            rows = list(
                s.scalars(select(CheckpointRow).where(CheckpointRow.id.in_(checkpoint_ids)))
            )
            for row in rows:
                row.pruned = True
                s.execute(update(ModelRow).where(ModelRow.id == row.model_id).values(deleted=True))
