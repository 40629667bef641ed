"""A pool of long-lived sandboxed workers that run python graders.

A worker is started once (`_sandbox_worker.py`) and then grades batches sent
over its pipes, so a sample costs a function call, not a Python start-up. A
worker keeps the first grader source it is given (one source per process, so
one job's code never shares a process with another's); a worker that times
out, dies or nears its CPU limit is killed and replaced. Blocking pipe I/O
runs on the pool's own threads, one per worker, so the pool serves any event
loop (a training step may call `asyncio.run` each time).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import pwd
import select
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ._config import GraderSettings

__all__ = ["Outcome", "SandboxPool", "SandboxUnavailable"]

log = logging.getLogger(__name__)
_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sandbox_worker.py")
# The worker starts with this environment and nothing of the server's.
_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # fmt: skip


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot be set up here, and unsandboxed python is not allowed."""


@dataclass(frozen=True)
class Outcome:
    """One sample's result: a score, or an error kind with details.

    `error` is "runtime" (the grader raised or returned a non-number),
    "timeout", "worker_died" or "sandbox_unavailable".
    """

    score: float | None = None
    error: str | None = None
    details: str | None = None


class _Lines:
    """Reads lines from a pipe with a deadline."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()

    def readline(self, deadline: float) -> bytes | None:
        while (end := self.buffer.find(b"\n")) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
                raise TimeoutError
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return None
            self.buffer += chunk
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        return line


class _Worker:
    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.lines = _Lines(process.stdout.fileno())  # type: ignore[union-attr]
        self.key: str | None = None
        self.cpu = 0.0
        self.alive = True

    @classmethod
    def start(cls, opts: dict[str, Any], timeout: float) -> _Worker:
        process = subprocess.Popen(
            [sys.executable, "-I", _WORKER, json.dumps(opts)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=_ENV, cwd="/", close_fds=True,
        )  # fmt: skip
        worker = cls(process)
        try:
            line = worker.lines.readline(time.monotonic() + timeout)
        except TimeoutError:
            line = b'{"fatal": "the worker did not start in time"}'
        reply = json.loads(line) if line else {"fatal": "the worker exited while starting"}
        if not reply.get("ready"):
            worker.kill()
            raise SandboxUnavailable(str(reply.get("fatal")))
        return worker

    def kill(self) -> None:
        # SIGKILL to the namespace's parent; PR_SET_PDEATHSIG takes its PID 1,
        # and with it every process the grader started, down with it.
        self.alive = False
        self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()

    def _died(self) -> Outcome:
        self.kill()
        return Outcome(error="worker_died", details=f"worker exited with {self.process.returncode}")

    def run(self, source: str, key: str, tasks: list[Any], timeout: float) -> list[Outcome]:
        """Outcomes of a prefix of `tasks`: all of them unless a task failed the worker."""
        request: dict[str, Any] = {"key": key, "tasks": tasks}
        if self.key != key:
            request["source"] = source
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")  # type: ignore[union-attr]
            self.process.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, ValueError):
            self.kill()
            return []  # died while idle: nothing was graded, try another worker
        self.key = key
        outcomes: list[Outcome] = []
        for _ in tasks:
            try:
                line = self.lines.readline(time.monotonic() + timeout)
            except TimeoutError:
                self.kill()
                return [*outcomes, Outcome(error="timeout", details=f"grade ran past {timeout:g}s")]
            if line is None:
                return [*outcomes, self._died()]
            reply = json.loads(line)
            outcomes.append(
                Outcome(
                    score=reply.get("score"), error=reply.get("error"), details=reply.get("details")
                )
            )
        try:
            done = self.lines.readline(time.monotonic() + timeout)
        except TimeoutError:
            done = None
        if done is None:
            self.kill()
        else:
            self.cpu = float(json.loads(done).get("cpu", 0.0))
        return outcomes


class SandboxPool:
    """Sandboxed python-grader workers, at most `settings.python_workers` of them."""

    def __init__(self, *, settings: GraderSettings) -> None:
        self._settings = settings
        self._executor = ThreadPoolExecutor(
            settings.python_workers, thread_name_prefix="openrft-grader"
        )
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._sandboxed: bool | None = None

    @property
    def sandboxed(self) -> bool | None:
        """True or False once a worker has started; None before."""
        return self._sandboxed

    def _opts(self, sandbox: bool) -> dict[str, Any]:
        s = self._settings
        uid = gid = -1
        if sandbox:
            try:
                user = pwd.getpwnam(s.sandbox_user)
            except KeyError:
                raise SandboxUnavailable(f"no user {s.sandbox_user!r} to run graders as") from None
            uid, gid = user.pw_uid, user.pw_gid
        return {
            "sandbox": sandbox, "uid": uid, "gid": gid, "hide": list(s.hidden_paths),
            "memory_mb": s.python_memory_mb, "cpu_s": s.python_cpu_s, "fsize_mb": s.python_file_size_mb,
            "disk_mb": s.python_disk_mb, "nproc": s.python_max_processes,
        }  # fmt: skip

    def _start(self) -> _Worker:
        timeout = self._settings.python_startup_timeout_s
        if self._sandboxed is not False:
            try:
                worker = _Worker.start(self._opts(True), timeout)
            except SandboxUnavailable as exc:
                if not self._settings.allow_unsandboxed_python:
                    raise SandboxUnavailable(
                        f"python graders are refused: the sandbox cannot be set up ({exc}); "
                        "start the server with --allow-unsandboxed-python on a single-user machine"
                    ) from None
                log.warning("python graders run UNSANDBOXED: %s", exc)
                self._sandboxed = False
            else:
                self._sandboxed = True
                return worker
        return _Worker.start(self._opts(False), timeout)

    def _take(self, key: str) -> _Worker:
        with self._lock:
            for wanted in (key, None):
                for worker in self._idle:
                    if worker.key == wanted:
                        self._idle.remove(worker)
                        return worker
            stale = self._idle.pop() if self._idle else None
        if stale is not None:
            stale.kill()  # bound to another source: never reuse it for this one
        return self._start()

    def _give(self, worker: _Worker) -> None:
        if worker.alive and worker.cpu > 0.8 * self._settings.python_cpu_s:
            worker.kill()  # recycle before RLIMIT_CPU would kill it mid-sample
        if worker.alive:
            with self._lock:
                self._idle.append(worker)

    def _run_chunk(self, source: str, key: str, tasks: list[Any]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        idle_deaths = 0
        while len(outcomes) < len(tasks):
            try:
                worker = self._take(key)
            except SandboxUnavailable as exc:
                missing = len(tasks) - len(outcomes)
                return [
                    *outcomes,
                    *[Outcome(error="sandbox_unavailable", details=str(exc))] * missing,
                ]
            got = worker.run(source, key, tasks[len(outcomes) :], self._settings.python_timeout_s)
            self._give(worker)
            idle_deaths = idle_deaths + 1 if not got else 0
            if idle_deaths >= 3:
                got = [Outcome(error="worker_died", details="workers keep dying before grading")]
            outcomes += got
        return outcomes

    def check(self) -> None:
        """Start one worker now; raises SandboxUnavailable where python is refused."""
        worker = self._start()
        self._give(worker)

    async def grade(
        self, source: str, tasks: list[tuple[dict[str, Any], dict[str, Any]]]
    ) -> list[Outcome]:
        """Grade `(sample, item)` pairs with `source`'s `grade`, in batches."""
        key = hashlib.sha256(source.encode()).hexdigest()
        size = self._settings.python_batch_size
        loop = asyncio.get_running_loop()
        chunks = [[list(t) for t in tasks[i : i + size]] for i in range(0, len(tasks), size)]
        done = await asyncio.gather(
            *(loop.run_in_executor(self._executor, self._run_chunk, source, key, c) for c in chunks)
        )
        return [outcome for chunk in done for outcome in chunk]

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()
        self._executor.shutdown(wait=False, cancel_futures=True)
