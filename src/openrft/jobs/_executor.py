"""Executors run a leased job somewhere. The local one starts a worker process per job.

Workers are started by module path (`python -m openrft.training.worker`), so the
scheduler never imports the trainer or torch. Children stay in the server's process
group (Decision 12): stopping the server's group stops them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["Executor", "Finished", "LocalExecutor", "stop_processes", "worker_argv"]

WORKER_MODULE = "openrft.training.worker"


@dataclass
class Finished:
    job_id: str
    token: str
    returncode: int


def worker_argv(job_id: str, token: str, data_dir: Path) -> list[str]:
    """The flags every executor starts `WORKER_MODULE` with."""
    return ["--job-id", job_id, "--lease-token", token, "--data-dir", str(data_dir)]


def stop_processes(
    procs: Iterable[subprocess.Popen[bytes]], *, timeout: float, term: bool = True
) -> None:
    """SIGTERM each running worker (it checkpoints and exits), then wait for each; one
    still running after `timeout` is killed. `term=False` only waits before killing."""
    running = [proc for proc in procs if proc.poll() is None]
    if term:
        for proc in running:
            proc.send_signal(signal.SIGTERM)
    for proc in running:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Executor(Protocol):
    """Where jobs run: the local executor here, a Ray executor on a cluster."""

    def start(self, job_id: str, token: str, *, workers: int = 1) -> None:
        """Start the job's worker; `workers` is its data-parallel ranks."""
        ...

    def finished(self) -> list[Finished]:
        """Jobs whose worker has exited since the last call."""
        ...

    def running(self) -> int: ...

    def stop_all(self, *, timeout: float) -> None: ...


class LocalExecutor:
    def __init__(self, *, data_dir: Path, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self._data_dir = data_dir
        self._log_dir = log_dir
        self._env = env or {}
        self._procs: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}

    def start(self, job_id: str, token: str, *, workers: int = 1) -> None:
        # A data-parallel worker starts its other ranks itself, on this machine.
        self._log_dir.mkdir(parents=True, exist_ok=True)
        with (self._log_dir / f"{job_id}.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, *worker_argv(job_id, token, self._data_dir)],
                env={**os.environ, **self._env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._procs[job_id] = (token, proc)

    def finished(self) -> list[Finished]:
        done = []
        for job_id, (token, proc) in list(self._procs.items()):
            code = proc.poll()
            if code is not None:
                del self._procs[job_id]
                done.append(Finished(job_id, token, code))
        return done

    def running(self) -> int:
        return sum(1 for _, proc in self._procs.values() if proc.poll() is None)

    def pids(self) -> dict[str, int]:
        return {job_id: proc.pid for job_id, (_, proc) in self._procs.items()}

    def stop_all(self, *, timeout: float) -> None:
        """Ask every worker to checkpoint and stop (SIGTERM), then make sure they did."""
        stop_processes([proc for _, proc in self._procs.values()], timeout=timeout)
        self._procs.clear()
