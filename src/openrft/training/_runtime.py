"""What a training method sees of its job: events, metrics, checkpoints, control.

The runtime keeps the job's lease alive from a heartbeat thread and turns the
store's control flags (cancel, pause), SIGTERM (drain) and a lost lease into one
answer to `stop_reason()`, asked once per step.
"""

from __future__ import annotations

import csv
import io
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from openrft.store import CheckpointRow, JobRow, ModelRow, Store, new_id, now
from openrft.training._tracking import Tracking, trackers_for

__all__ = ["FollowerRuntime", "JobRuntime", "model_name"]

log = logging.getLogger("openrft.training")

T = TypeVar("T")


def model_name(job: JobRow, step: int | None = None) -> str:
    """`ft:{base}:{project}:{suffix}:{job id}`, plus `:ckpt-step-{N}` for a checkpoint."""
    name = f"ft:{job.base_model}:{job.project}:{job.suffix or ''}:{job.id}"
    return f"{name}:ckpt-step-{step}" if step is not None else name


class JobRuntime:
    """Parameters: `store`; `job` (the row as leased); `token` (the lease token);
    `lease_ttl` and `heartbeat_s` (seconds); `keep_checkpoints` (the best kept, beside
    the newest, when older ones are pruned: the project's retention setting);
    `tensorboard` (write TensorBoard event files beside the job's checkpoints)."""

    def __init__(
        self,
        *,
        store: Store,
        job: JobRow,
        token: str,
        lease_ttl: float,
        heartbeat_s: float,
        keep_checkpoints: int = 3,
        tensorboard: bool = True,
    ) -> None:
        self.store = store
        self.job = job
        self.token = token
        self.keep_checkpoints = keep_checkpoints
        self._lease_ttl = lease_ttl
        self._heartbeat_s = heartbeat_s
        self._drain = threading.Event()
        self._lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        self._failed = False
        self.tracking = Tracking(
            trackers=trackers_for(
                job.integrations,
                job_id=job.id,
                base_model=job.base_model,
                # Not `path()`: with an object store that would download the job's checkpoints.
                folder=store.blobs.local_dir(f"jobs/{job.id}"),
                tensorboard=tensorboard,
            ),
            config=self._tracking_config,
            warn=lambda key, message: self.event(message, level="warn", key=key),
        )

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self._drain.set())
        self._thread.start()

    def close(self) -> None:
        self.tracking.close(failed=self._failed)
        self._done.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._done.wait(self._heartbeat_s):
            try:
                if not self.store.jobs.heartbeat(self.job.id, self.token, self._lease_ttl):
                    self._lost.set()
            except Exception:  # a busy database is retried at the next beat
                log.exception("heartbeat failed")

    def stop_reason(self) -> str | None:
        """ "lost", "drain", "cancel" or "pause" when the loop must stop after this step."""
        if self._lost.is_set():
            return "lost"
        if self._drain.is_set():
            return "drain"
        job = self.store.jobs.by_id(self.job.id)
        if job.lease_token != self.token:
            return "lost"
        if job.status == "cancelled" or job.control == "cancel":
            return "cancel"
        if job.control == "pause":
            return "pause"
        return None

    def update(self, **fields: Any) -> bool:
        return self.store.jobs.update(self.job.id, token=self.token, **fields)

    def release(self, **fields: Any) -> None:
        # Tracking closes before anything says the job stopped (here, `finish` and `fail`):
        # a client that sees "paused" or "succeeded" may read the run files at once.
        self.tracking.close(failed=self._failed)
        self.store.jobs.release(self.job.id, self.token, **fields)

    # -- events -----------------------------------------------------------------------
    def event(
        self, message: str, *, level: str = "info", key: str | None = None, step: int | None = None
    ) -> None:
        self.store.jobs.add_event(self.job.id, message, level=level, dedupe_key=key, step=step)

    def drop_too_long(
        self, items: list[T], *, length: Callable[[T], int], limit: int, what: str
    ) -> list[T]:
        """Decision 6: examples longer than `limit` tokens are dropped with a warning that
        counts them; a training file whose every example is too long fails the job."""
        kept = [item for item in items if length(item) <= limit]
        dropped = len(items) - len(kept)
        if dropped:
            self.event(
                f"Dropped {dropped} {what} examples longer than {limit} tokens",
                level="warn",
                key=f"dropped-{what}",
            )
        if items and not kept and what == "training":
            raise ValueError(f"every training example is longer than {limit} tokens")
        return kept

    def resumed(self, step: int) -> None:
        """A restart from checkpoint `step`: events of later steps are redone, so dropped."""
        self.store.jobs.drop_events_after(self.job.id, step)
        self.event(
            f"Resumed from the checkpoint at step {step}",
            key=f"resumed-{step}-{self.token}",
            step=step,
        )

    def rollouts(self, step: int, rows: list[dict[str, Any]]) -> None:
        self.store.jobs.add_rollouts(self.job.id, step, rows)

    def metrics(self, step: int, total: int, data: dict[str, Any], message: str) -> None:
        """One metrics event per step: a redone step (after a crash) replaces nothing twice."""
        payload = {"step": step, "total_steps": total, **data}
        self.store.jobs.add_event(
            self.job.id,
            message,
            type="metrics",
            data=payload,
            step=step,
            dedupe_key=f"metrics-{step}",
        )
        self.tracking.log(step, payload)

    def _tracking_config(self) -> dict[str, Any]:
        """What a tracked run records as its config: the job with its hyperparameters as
        resolved ("auto" replaced), read when the first step is logged."""
        job = self.store.jobs.by_id(self.job.id)
        return {
            "job_id": job.id,
            "model": job.model,
            "base_model": job.base_model,
            "method": job.method["type"],
            "hyperparameters": job.method.get(job.method["type"], {}).get("hyperparameters", {}),
            "training_file": job.training_file,
            "validation_file": job.validation_file,
            "seed": job.seed,
            "suffix": job.suffix,
        }

    # -- checkpoints and the final model -----------------------------------------------
    def _register(self, *, source: str, step: int | None, weights_format: str) -> ModelRow:
        job = self.job
        return ModelRow(
            id=model_name(job, step),
            project=job.project,
            kind="checkpoint" if step is not None else "fine-tuned",
            created_at=now(),
            owned_by=job.project,
            source=source,
            base_model=job.base_model,
            job_id=job.id,
            weights_format=weights_format,
            details={"parent": job.model if job.model != job.base_model else None},
        )

    def save_checkpoint(
        self, step: int, folder: Path, metrics: dict[str, Any], *, weights_format: str
    ) -> CheckpointRow:
        """Store `folder` (model/ plus state.pt) as checkpoint `step` and register its model."""
        key = f"jobs/{self.job.id}/ckpt-step-{step}"
        self.store.blobs.put_dir(key, folder)
        row = CheckpointRow(
            id=new_id("ftckpt_"),
            job_id=self.job.id,
            step_number=step,
            created_at=now(),
            metrics={"step": float(step), **metrics},
            model_id=model_name(self.job, step),
            blob_key=key,
        )
        self.store.jobs.add_checkpoint(
            row, self._register(source=f"{key}/model", step=step, weights_format=weights_format)
        )
        self.event(f"Checkpoint created at step {step}", key=f"checkpoint-{step}", step=step)
        return row

    def prune_checkpoints(self, *, keep: int, metric: str | None, higher_is_better: bool) -> None:
        """Keep the best `keep` checkpoints by `metric`, plus the newest (OpenAI keeps three)."""
        rows = self.store.jobs.checkpoints(self.job.id, limit=10_000, after=None).rows
        if len(rows) <= keep + 1:
            return
        rest = rows[1:]  # rows are newest first; the newest is always kept, for resuming

        def rank(row: CheckpointRow) -> float:
            value = row.metrics.get(metric) if metric else None
            if value is None:
                return float("inf")
            return -float(value) if higher_is_better else float(value)

        if metric:
            rest.sort(key=rank)
        drop = rest[keep:]
        self.store.jobs.mark_pruned([r.id for r in drop])
        for row in drop:
            self.store.blobs.delete(row.blob_key)

    def checkpoint_path(self, row: CheckpointRow) -> Path:
        return self.store.blobs.path(row.blob_key)

    def finish(
        self,
        folder: Path,
        *,
        weights_format: str,
        history: list[dict[str, Any]],
        trained_tokens: int,
    ) -> str:
        """Publish the final model and the results CSV, and mark the job succeeded."""
        key = f"jobs/{self.job.id}/final"
        self.store.blobs.put_dir(key, folder)
        name = model_name(self.job)
        model = self._register(source=key, step=None, weights_format=weights_format)
        if self.store.models.get_any(name) is None:
            self.store.models.add(model)
        results = self._results_file(history)
        self.tracking.close(failed=False)
        self.update(
            status="succeeded",
            finished_at=now(),
            fine_tuned_model=name,
            result_files=[results],
            trained_tokens=trained_tokens,
            estimated_finish=None,
        )
        self.event(f"New fine-tuned model created: {name}", key="model-created")
        self.event("The job has successfully completed", key="succeeded")
        return name

    def _results_file(self, history: list[dict[str, Any]]) -> str:
        columns: list[str] = []
        for row in history:
            columns += [
                k for k, v in row.items() if k not in columns and isinstance(v, (int, float))
            ]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
        file_id, blob = self.store.files.open_upload()
        blob.write(buf.getvalue().encode())
        self.store.files.commit_upload(
            blob,
            file_id=file_id,
            project=self.job.project,
            filename="step_metrics.csv",
            purpose="fine-tune-results",
        )
        return file_id

    def fail(self, code: str, message: str) -> None:
        self._failed = True
        self.tracking.close(failed=True)
        self.update(
            status="failed",
            finished_at=now(),
            error={"code": code, "message": message, "param": None},
        )
        self.event(message, level="error", key="failed")


class FollowerRuntime(JobRuntime):
    """What a data-parallel rank other than 0 sees of its job: it reads the job, its files
    and checkpoints, and writes nothing; rank 0 holds the lease, writes events, metrics and
    checkpoints, and broadcasts each step's stop decision (`run_loop`). SIGTERM is left to
    rank 0 too: a drain stops every rank at the same step."""

    def __init__(self, *, store: Store, job: JobRow, token: str) -> None:
        self.store, self.job, self.token = store, job, token
        self.keep_checkpoints = 0

    def start(self) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def close(self) -> None:
        pass

    def stop_reason(self) -> str | None:
        return None

    def update(self, **fields: Any) -> bool:
        return True

    def release(self, **fields: Any) -> None:
        pass

    def event(
        self, message: str, *, level: str = "info", key: str | None = None, step: int | None = None
    ) -> None:
        pass

    def resumed(self, step: int) -> None:
        pass

    def rollouts(self, step: int, rows: list[dict[str, Any]]) -> None:
        pass

    def metrics(self, step: int, total: int, data: dict[str, Any], message: str) -> None:
        pass

    def fail(self, code: str, message: str) -> None:
        pass
