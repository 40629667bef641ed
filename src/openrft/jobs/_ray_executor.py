"""The Ray executor: each leased job runs as one Ray actor on whichever node has room.

The actor starts the same worker the local executor starts
(`python -m openrft.training.worker`) as a subprocess on its node, so draining on
SIGTERM, the log file and everything the worker writes to the store behave exactly as
they do locally. The actor only reserves the job's resources (CPUs, GPUs, memory) and
forwards a stop request to its subprocess.

Cancel, pause and resume need nothing from here: the worker polls its job row. A node
lost mid-job shows up as a failed actor call; the scheduler then frees the lease and the
job is leased again and resumes from its last checkpoint on another node.

Every node must reach the same store: the server's data folder at the same path (a shared
filesystem), or `--database-url` and `--blob-url` (passed to each worker in its env).
`ray` is imported only when the first job starts, so the scheduler loads without it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openrft.jobs._executor import WORKER_MODULE, Finished

__all__ = ["RayExecutor"]

log = logging.getLogger("openrft.jobs")

# What `finished()` reports for a job whose actor died (node lost, actor killed):
# a worker that did not exit by itself.
LOST = -1


class WorkerProcess:
    """The body of one job's Ray actor: a worker subprocess on the actor's node.

    It is a threaded actor (`max_concurrency=2`), so `stop` runs while `run` waits.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = False

    def run(self, argv: list[str], env: dict[str, str], log_path: str) -> int:
        """Run the worker to its end; its exit status is the call's result."""
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self._stopped:  # stopped before it started: the lease stays for the next one
                return -signal.SIGTERM
            with open(log_path, "ab") as out:
                # This node's Python, not the server's: nodes may install openrft elsewhere.
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", WORKER_MODULE, *argv],
                    env={**os.environ, **env},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
        return self._proc.wait()

    def stop(self, timeout: float) -> None:
        """SIGTERM, as the local executor sends it: the worker checkpoints and exits."""
        with self._lock:
            self._stopped = True
            proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class _Running:
    token: str
    actor: Any  # ray.actor.ActorHandle
    ref: Any  # ray.ObjectRef of `run`


class RayExecutor:
    """Parameters: `address` of the Ray cluster (`host:port`, `auto`, or None for Ray's
    own default); `data_dir` and `log_dir` as the worker sees them on its node; `env`
    added to every worker's environment (with the server's `OPENRFT_*` variables);
    `num_cpus`, `num_gpus` and `memory_bytes` each job's actor reserves."""

    def __init__(
        self,
        *,
        address: str | None,
        data_dir: Path,
        log_dir: Path,
        env: dict[str, str] | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        memory_bytes: int | None = None,
    ) -> None:
        if importlib.util.find_spec("ray") is None:
            raise RuntimeError(
                "the Ray executor needs the `ray` package: pip install 'openrft[ray]'"
            )
        self._address = address
        self._data_dir = data_dir
        self._log_dir = log_dir
        self._env = env or {}
        self._resources: dict[str, Any] = {"num_cpus": num_cpus, "num_gpus": num_gpus}
        if memory_bytes:
            self._resources["memory"] = memory_bytes
        self._jobs: dict[str, _Running] = {}
        self._actor_class: Any = None

    def _connect(self) -> Any:
        import ray

        if self._actor_class is None:
            if not ray.is_initialized():
                # log_to_driver=False: each worker already logs to its own file.
                ray.init(
                    address=self._address,
                    namespace="openrft",
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
            self._actor_class = ray.remote(WorkerProcess)
        return ray

    def _worker_env(self) -> dict[str, str]:
        # The server's settings as the worker reads them: OPENRFT_* from its environment,
        # then what the server resolved (judge endpoint, database and blob URLs).
        env = {k: v for k, v in os.environ.items() if k.startswith("OPENRFT_")}
        return {**env, **self._env}

    def start(self, job_id: str, token: str) -> None:
        ray = self._connect()
        stale = self._jobs.pop(job_id, None)
        if stale is not None:  # its lease expired and the job was leased again
            ray.kill(stale.actor, no_restart=True)
        actor = self._actor_class.options(
            name=f"openrft-job-{job_id}-{token[:8]}",
            max_concurrency=2,
            max_restarts=0,
            **self._resources,
        ).remote()
        argv = ["--job-id", job_id, "--lease-token", token, "--data-dir", str(self._data_dir)]
        ref = actor.run.remote(argv, self._worker_env(), str(self._log_dir / f"{job_id}.log"))
        self._jobs[job_id] = _Running(token=token, actor=actor, ref=ref)

    def _done(self) -> set[str]:
        if not self._jobs:
            return set()
        ray = self._connect()
        refs = [r.ref for r in self._jobs.values()]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        return {job_id for job_id, r in self._jobs.items() if r.ref in ready}

    def finished(self) -> list[Finished]:
        done = []
        for job_id in self._done():
            running = self._jobs.pop(job_id)
            ray = self._connect()
            try:
                code = ray.get(running.ref)
            except ray.exceptions.RayError as exc:  # node lost, actor killed
                log.warning("Ray actor for %s failed: %s", job_id, exc)
                code = LOST
            ray.kill(running.actor, no_restart=True)  # free its CPUs, GPUs and memory
            done.append(Finished(job_id, running.token, code))
        return done

    def running(self) -> int:
        return len(self._jobs) - len(self._done())

    def stop_all(self, *, timeout: float) -> None:
        """Ask every worker to checkpoint and stop (SIGTERM through its actor), wait for
        them, then release the actors and the connection."""
        if self._actor_class is None:
            return  # never connected: no job ever started here
        ray = self._connect()
        stops = [r.actor.stop.remote(timeout) for r in self._jobs.values()]
        # The actor SIGKILLs its worker after `timeout`; the margin covers the round trip.
        if stops:
            ray.wait(stops, num_returns=len(stops), timeout=timeout + 10)
        for running in self._jobs.values():
            ray.kill(running.actor, no_restart=True)
        self._jobs.clear()
        ray.shutdown()
        self._actor_class = None
