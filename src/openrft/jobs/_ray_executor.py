"""The Ray executor: each leased job runs as one Ray actor on whichever node has room.

The actor starts the same worker the local executor starts
(`python -m openrft.training.worker`) as a subprocess on its node, so draining on
SIGTERM, the log file and everything the worker writes to the store behave exactly as
they do locally. The actor only reserves the job's resources (CPUs, GPUs, memory) and
forwards a stop request to its subprocess.

A data-parallel job (`num_workers` N > 1) runs as N such actors in one placement group,
one bundle per rank. Each starts its rank with the flags `openrft.training._launch`
describes (`--rank R --world-size N --master-addr A --master-port P --backend B`), rank 0
included, so no rank starts local children; A and P are rank 0's node and a port free
there, which its actor picks once Ray has placed it. Rank 0 holds the lease and writes
everything: the job ends when rank 0's call ends. The other ranks stop when rank 0 tells
them, or fail on their next collective when it is gone; their actors and the placement
group are released once they have exited (or been killed).

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
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openrft.jobs._executor import WORKER_MODULE, Finished, stop_processes, worker_argv

__all__ = ["RayExecutor"]

log = logging.getLogger("openrft.jobs")

# What `finished()` reports for a job whose actor died (node lost, actor killed):
# a worker that did not exit by itself.
LOST = -1
# A finished job's other ranks get this long to exit by themselves before they are killed.
FOLLOWER_EXIT_S = 30.0
# A rank other than 0 that failed makes rank 0 fail its next collective and exit; a rank 0
# still running this long after (stuck joining the group) is stopped, so the job resumes.
RANK_FAILURE_GRACE_S = 30.0


class WorkerProcess:
    """The body of one job's Ray actor: a worker subprocess on the actor's node.

    It is a threaded actor (`max_concurrency=2`), so `stop` runs while `run` waits.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = False

    def address(self) -> tuple[str, int]:
        """This node's IP and a port free on it: where a data-parallel rank 0 listens."""
        import ray

        with socket.socket() as s:
            s.bind(("", 0))
            return ray.util.get_node_ip_address(), int(s.getsockname()[1])

    def run(
        self,
        argv: list[str],
        env: dict[str, str],
        log_path: str,
        master: tuple[str, int] | None = None,
    ) -> int:
        """Run the worker to its end; its exit status is the call's result. `master` is
        rank 0's `address()` for a rank of a data-parallel job."""
        if master is not None:
            argv = [*argv, "--master-addr", master[0], "--master-port", str(master[1])]
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

    def stop(self, timeout: float, term: bool = True) -> None:
        """SIGTERM, as the local executor sends it: the worker checkpoints and exits; killed
        if it has not after `timeout`. `term=False` only waits before killing: a rank
        other than 0 stops at the step rank 0 stops at, when rank 0 tells it."""
        with self._lock:
            self._stopped = True
            proc = self._proc
        if proc is not None:
            stop_processes([proc], timeout=timeout, term=term)


@dataclass
class _Running:
    token: str
    actors: list[Any]  # ray.actor.ActorHandle per rank, rank 0 first
    refs: list[Any]  # ray.ObjectRef of each rank's `run`
    group: Any = None  # the placement group of a data-parallel job
    rank_failed_at: float | None = None  # when a rank other than 0 was seen failing
    stopping: bool = False  # rank 0 was told to stop (a rank failed)


@dataclass
class _Closing:
    """A finished job's other ranks, released once their `stop` calls have returned."""

    actors: list[Any]
    group: Any
    stops: list[Any] = field(default_factory=list)


class RayExecutor:
    """Parameters: `address` of the Ray cluster (`host:port`, `auto`, or None for Ray's
    own default); `data_dir` and `log_dir` as the worker sees them on its node; `env`
    added to every worker's environment (with the server's `OPENRFT_*` variables);
    `num_cpus`, `num_gpus` and `memory_bytes` each job's actor (each rank's, for a
    data-parallel job) reserves; `placement`, Ray's placement-group strategy for the ranks
    of a data-parallel job ("PACK": as few nodes as fit; "SPREAD": one node each if
    possible; or their STRICT_ forms)."""

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
        placement: str = "PACK",
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
        bundle = {"CPU": num_cpus, "GPU": num_gpus, "memory": memory_bytes or 0}
        self._bundle = {k: v for k, v in bundle.items() if v}  # Ray refuses zero amounts
        self._placement = placement
        self._jobs: dict[str, _Running] = {}
        self._closing: list[_Closing] = []
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

    def start(self, job_id: str, token: str, *, workers: int = 1) -> None:
        """Start the job's worker; `workers` > 1: its data-parallel ranks, one actor each."""
        self._connect()
        stale = self._jobs.pop(job_id, None)
        if stale is not None:  # its lease expired and the job was leased again
            self._release(stale.actors, stale.group)
        name = f"openrft-job-{job_id}-{token[:8]}"
        argv = worker_argv(job_id, token, self._data_dir)
        log_path = str(self._log_dir / f"{job_id}.log")
        if workers == 1:
            actor = self._actor(name)
            ref = actor.run.remote(argv, self._worker_env(), log_path)
            self._jobs[job_id] = _Running(token=token, actors=[actor], refs=[ref])
            return
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        group = placement_group([self._bundle] * workers, strategy=self._placement, name=name)
        actors = [
            self._actor(
                f"{name}-rank{rank}",
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    group, placement_group_bundle_index=rank
                ),
            )
            for rank in range(workers)
        ]
        # Rank 0's node and a free port there, once Ray has placed it: each rank's `run`
        # waits for it (Ray resolves a reference argument before the call starts).
        master = actors[0].address.remote()
        backend = "nccl" if self._resources["num_gpus"] >= 1 else "gloo"
        refs = [
            actor.run.remote(
                [*argv, "--rank", str(rank), "--world-size", str(workers), "--backend", backend],
                self._worker_env(),
                log_path,
                master,
            )
            for rank, actor in enumerate(actors)
        ]
        self._jobs[job_id] = _Running(token=token, actors=actors, refs=refs, group=group)

    def _actor(self, name: str, **placement: Any) -> Any:
        return self._actor_class.options(
            name=name, max_concurrency=2, max_restarts=0, **self._resources, **placement
        ).remote()

    def _release(self, actors: list[Any], group: Any) -> None:
        """Free the actors' CPUs, GPUs and memory, and the job's placement group."""
        import ray
        from ray.util.placement_group import remove_placement_group

        for actor in actors:
            ray.kill(actor, no_restart=True)
        if group is not None:
            remove_placement_group(group)

    def _exit_code(self, job_id: str, ref: Any) -> int:
        import ray

        try:
            return int(ray.get(ref))
        except ray.exceptions.RayError as exc:  # node lost, actor killed
            log.warning("Ray actor for %s failed: %s", job_id, exc)
            return LOST

    def _done(self) -> set[str]:
        """Jobs whose rank 0 has returned: the job's outcome is rank 0's."""
        if not self._jobs:
            return set()
        ray = self._connect()
        refs = [r.refs[0] for r in self._jobs.values()]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        return {job_id for job_id, r in self._jobs.items() if r.refs[0] in ready}

    def finished(self) -> list[Finished]:
        self._sweep()
        done = []
        for job_id in self._done():
            running = self._jobs.pop(job_id)
            code = self._exit_code(job_id, running.refs[0])
            self._release(running.actors[:1], None)
            if len(running.actors) > 1:
                others = running.actors[1:]
                stops = [a.stop.remote(FOLLOWER_EXIT_S, term=False) for a in others]
                self._closing.append(_Closing(others, running.group, stops))
            done.append(Finished(job_id, running.token, code))
        return done

    def _sweep(self) -> None:
        """Release the ranks of finished jobs that have exited; stop a rank 0 that outlives
        a failed rank (it would wait for it until the group's timeout if not yet joined)."""
        if not self._jobs and not self._closing:
            return
        ray = self._connect()
        for closing in list(self._closing):
            ready, _ = ray.wait(closing.stops, num_returns=len(closing.stops), timeout=0)
            if len(ready) == len(closing.stops):
                self._closing.remove(closing)
                self._release(closing.actors, closing.group)
        for job_id, running in self._jobs.items():
            if len(running.refs) == 1 or running.stopping:
                continue
            if running.rank_failed_at is None:
                others = running.refs[1:]
                ready, _ = ray.wait(others, num_returns=len(others), timeout=0)
                if any(self._exit_code(job_id, ref) != 0 for ref in ready):
                    log.warning("a data-parallel rank of %s failed", job_id)
                    running.rank_failed_at = time.monotonic()
            elif time.monotonic() - running.rank_failed_at > RANK_FAILURE_GRACE_S:
                running.actors[0].stop.remote(FOLLOWER_EXIT_S)
                running.stopping = True

    def running(self) -> int:
        return len(self._jobs) - len(self._done())

    def stop_all(self, *, timeout: float) -> None:
        """Ask every worker to checkpoint and stop (SIGTERM through its actor; rank 0 of a
        data-parallel job tells its other ranks), wait for them, then release the actors,
        placement groups and the connection."""
        if self._actor_class is None:
            return  # never connected: no job ever started here
        ray = self._connect()
        stops = [ref for closing in self._closing for ref in closing.stops]
        for running in self._jobs.values():
            stops.append(running.actors[0].stop.remote(timeout))
            # The others stop at rank 0's last step; killed if they outlive it.
            stops += [a.stop.remote(timeout + 10, term=False) for a in running.actors[1:]]
        # The actors SIGKILL their workers after their timeouts; the margin covers the
        # round trip.
        if stops:
            ray.wait(stops, num_returns=len(stops), timeout=timeout + 20)
        for running in self._jobs.values():
            self._release(running.actors, running.group)
        for closing in self._closing:
            self._release(closing.actors, closing.group)
        self._jobs.clear()
        self._closing.clear()
        ray.shutdown()
        self._actor_class = None
