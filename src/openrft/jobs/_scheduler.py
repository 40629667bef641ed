"""The scheduler: moves jobs from `validating_files` to `queued`, leases queued jobs to
the executor, and recovers jobs whose worker died.

It runs as a thread inside the server. All its decisions go through the store, so a
restarted server (or a second one) picks up exactly where the first left off.
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid

from openrft.errors import OpenRFTError
from openrft.jobs._executor import Executor
from openrft.jobs._validation import validate_job_files
from openrft.methods import requested_workers
from openrft.store import Store, now

__all__ = ["Scheduler"]

log = logging.getLogger("openrft.jobs")


class Scheduler:
    """Parameters: `store`; `executor` (where jobs run); `max_concurrent` jobs at once;
    `lease_ttl` seconds a lease lives without renewal; `max_attempts` starts per job."""

    def __init__(
        self,
        *,
        store: Store,
        executor: Executor,
        max_concurrent: int,
        lease_ttl: float,
        max_attempts: int,
        interval: float = 0.5,
    ) -> None:
        self.store = store
        self.executor = executor
        self.max_concurrent = max_concurrent
        self.lease_ttl = lease_ttl
        self.max_attempts = max_attempts
        self.interval = interval
        self.owner = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="openrft-scheduler", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, *, drain_timeout: float = 60.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)
        self.executor.stop_all(timeout=drain_timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # never let one bad tick kill scheduling
                log.exception("scheduler tick failed")
            self._wake.wait(self.interval)
            self._wake.clear()

    def tick(self) -> None:
        self._validate()
        self._reap()
        self._lease()

    def _validate(self) -> None:
        for job in self.store.jobs.jobs_in(("validating_files",)):
            try:
                validate_job_files(self.store, job)
            except OpenRFTError as exc:
                self.store.jobs.update(
                    job.id,
                    status="failed",
                    finished_at=now(),
                    error={
                        "code": exc.code or "invalid_training_file",
                        "message": exc.message,
                        "param": exc.param,
                    },
                )
                self.store.jobs.add_event(job.id, exc.message, level="error", dedupe_key="failed")
                continue
            if self.store.jobs.update(job.id, status="queued"):
                self.store.jobs.add_event(
                    job.id, "Files validated, moving job to queued state", dedupe_key="validated"
                )

    def _reap(self) -> None:
        """A worker that exited without releasing its lease died: free the job at once."""
        for done in self.executor.finished():
            job = self.store.jobs.by_id(done.job_id)
            if job.lease_token != done.token:
                continue  # it released its lease (finished, paused, cancelled) as it should
            log.warning(
                "worker for %s exited with %s; the job will resume", job.id, done.returncode
            )
            self.store.jobs.release(job.id, done.token)
            if job.attempts >= self.max_attempts and job.status not in ("paused",):
                self._fail(
                    job.id, f"The training worker stopped unexpectedly {job.attempts} times."
                )

    def _lease(self) -> None:
        free = self.max_concurrent - self.executor.running()
        for job, token in self.store.jobs.lease_runnable(
            owner=self.owner, ttl=self.lease_ttl, limit=free
        ):
            if job.attempts > self.max_attempts:
                self.store.jobs.release(job.id, token)
                self._fail(
                    job.id, f"The training worker stopped unexpectedly {job.attempts - 1} times."
                )
                continue
            self.executor.start(job.id, token, workers=requested_workers(job.method))

    def _fail(self, job_id: str, message: str) -> None:
        self.store.jobs.update(
            job_id,
            status="failed",
            finished_at=now(),
            error={"code": "worker_failed", "message": message, "param": None},
        )
        self.store.jobs.add_event(job_id, message, level="error", dedupe_key="failed")
