"""Starting a data-parallel job's ranks 1..N-1 (rank 0 is the job's leased worker).

Every rank is the same program, `python -m openrft.training.worker --job-id ID
--lease-token T [--data-dir D] --rank R --world-size N --master-addr A --master-port P
--backend B`: given `--world-size`, a worker starts nothing and joins the group. Rank 0
started by the local executor without `--world-size` starts the others here, through a
`RankLauncher`; a cluster executor can instead start every rank itself, rank 0 included,
with these flags and rank 0's reachable address.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Protocol

from openrft.training._data_parallel import Rendezvous, default_backend

__all__ = ["LocalRanks", "RankLauncher", "Ranks", "local_rendezvous"]

WORKER_MODULE = "openrft.training.worker"


class Ranks(Protocol):
    """Ranks 1..N-1 of a job, running somewhere."""

    def failure(self) -> str | None:
        """Why a rank stopped, if one has exited with an error."""
        ...

    def stop(self, *, timeout: float) -> None:
        """Wait up to `timeout` seconds for the ranks to finish, then end them."""
        ...


class RankLauncher(Protocol):
    def __call__(self, *, job_argv: list[str], rendezvous: list[Rendezvous]) -> Ranks:
        """Start one worker per rendezvous (ranks 1..N-1) with `job_argv` (the job's
        `--job-id/--lease-token/--data-dir` flags) plus `Rendezvous.argv()`."""
        ...


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def local_rendezvous(world_size: int) -> list[Rendezvous]:
    """Every rank's rendezvous for a group on this machine, rank 0 first."""
    port, backend = _free_port(), default_backend(world_size)
    return [Rendezvous(r, world_size, "127.0.0.1", port, backend) for r in range(world_size)]


class LocalRanks:
    """Ranks as child processes of this worker; they write to its log (stdout/stderr)."""

    def __init__(self, procs: dict[int, subprocess.Popen[bytes]]) -> None:
        self._procs = procs

    @classmethod
    def start(cls, *, job_argv: list[str], rendezvous: list[Rendezvous]) -> LocalRanks:
        procs = {
            r.rank: subprocess.Popen([sys.executable, "-m", WORKER_MODULE, *job_argv, *r.argv()])
            for r in rendezvous
        }
        return cls(procs)

    def failure(self) -> str | None:
        for rank, proc in self._procs.items():
            code = proc.poll()
            if code:
                return f"data-parallel rank {rank} exited with code {code}"
        return None

    def stop(self, *, timeout: float) -> None:
        for proc in self._procs.values():
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
