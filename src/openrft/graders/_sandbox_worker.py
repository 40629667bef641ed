"""The python-grader worker: a script, standard library only, run by `_python_pool`.

It is started as `python -I _sandbox_worker.py OPTIONS_JSON` with an almost
empty environment, then (Decision 7):

1. unshares mount, network and PID namespaces and forks, so the grader process
   is PID 1 of a namespace with no network interface up; killing it kills
   every process the grader started (fork bombs included);
2. mounts a fresh /proc, makes the interpreter reachable for the sandbox user, private tmpfs over /tmp and /dev/shm, and empty
   tmpfs over each hidden path (the server's data folder);
3. sets rlimits (address space, CPU, file size, processes, no core files);
4. drops to the sandbox user (no groups, no new privileges) and dies with its
   parent (PR_SET_PDEATHSIG).

Then it answers JSON lines on its inherited stdin/stdout: a request
`{"key", "source"?, "tasks": [[sample, item], ...]}` gets one line per task,
`{"score": x}` or `{"error": "runtime", "details": "..."}`, then
`{"done": true, "cpu": seconds}`. The grader's own stdout goes to /dev/null.
A grader can forge only its own scores, so the pipes need no authentication.
"""

from __future__ import annotations

import ctypes
import json
import math
import numbers
import os
import resource
import signal
import sys
import tempfile
import traceback
from typing import Any, BinaryIO

CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    encode = lambda s: s.encode() if s is not None else None  # noqa: E731
    _check(
        _libc.mount(encode(source), target.encode(), encode(fstype), flags, encode(data)),
        f"mount {target}",
    )


def _prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, value, 0, 0, 0), f"prctl {option}")


def _blocked_ancestor(path: str) -> str | None:
    """The outermost folder above `path` that other users cannot traverse."""
    parts = path.strip("/").split("/")
    for depth in range(1, len(parts)):
        ancestor = "/" + "/".join(parts[:depth])
        if not os.stat(ancestor).st_mode & 0o001:
            return ancestor
    return None


def _expose_python() -> None:
    """Keep Python importable for the sandbox user where it lives under a private
    folder (pyenv in /root): a tmpfs covers that folder, which also hides the
    rest of it, and the interpreter's folders are bound back in."""
    needed = sorted(
        {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, *sys.path) if os.path.isdir(p)}
    )
    tops: list[str] = []
    for path in needed:
        if not any(path == t or path.startswith(t + "/") for t in tops):
            tops.append(path)
    blocked: dict[str, list[tuple[str, int]]] = {}
    for path in tops:  # open every folder before any tmpfs covers it
        ancestor = _blocked_ancestor(path)
        if ancestor is not None:
            blocked.setdefault(ancestor, []).append((path, os.open(path, os.O_PATH)))
    os.umask(0o022)
    for ancestor, paths in blocked.items():
        _mount("tmpfs", ancestor, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")
        for path, fd in paths:
            os.makedirs(path, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
            os.close(fd)


def _enter_namespaces(opts: dict[str, Any], keep: tuple[int, ...]) -> None:
    """Unshare and fork; only the child (PID 1 of the new namespace) returns."""
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID), "unshare")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # our mounts never reach the host
    pid = os.fork()
    if pid:  # stays outside only to wait; closing the pipes lets the pool see EOF
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, *keep):
            os.dup2(null, fd)
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _expose_python()
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={opts['disk_mb']}m,mode=1777")
    if os.path.isdir("/dev/shm"):
        _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=1m,mode=1777")
    for path in opts["hide"]:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=000")
        elif os.path.exists(path):
            _mount("/dev/null", path, None, MS_BIND)
    # PID 1 must reap orphans; ignoring SIGCHLD lets the kernel do it.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    workdir = "/tmp/work"
    os.mkdir(workdir, 0o700)
    os.chown(workdir, opts["uid"], opts["gid"])
    os.chdir(workdir)
    _set_limits(opts)
    os.setgroups([])
    os.setgid(opts["gid"])
    os.setuid(opts["uid"])
    if os.getuid() != opts["uid"] or os.geteuid() != opts["uid"]:
        raise OSError("could not drop privileges")
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # a change of uid cleared it


def _set_limits(opts: dict[str, Any]) -> None:
    mb = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (opts["memory_mb"] * mb, opts["memory_mb"] * mb))
    resource.setrlimit(resource.RLIMIT_CPU, (opts["cpu_s"], opts["cpu_s"] + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (opts["fsize_mb"] * mb, opts["fsize_mb"] * mb))
    if opts["nproc"] is not None:  # unsandboxed root: not enforced, so not set
        resource.setrlimit(resource.RLIMIT_NPROC, (opts["nproc"], opts["nproc"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    # Writing past RLIMIT_FSIZE then raises OSError instead of killing the worker.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _enter_plain(opts: dict[str, Any]) -> None:
    """--allow-unsandboxed-python: limits and an empty folder, nothing more."""
    os.chdir(tempfile.mkdtemp(prefix="openrft-grader-"))
    _set_limits({**opts, "nproc": None})


def _send(out: BinaryIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message).encode() + b"\n")
    out.flush()


def _load(source: str) -> Any:
    namespace: dict[str, Any] = {"__name__": "__grader__"}
    exec(compile(source, "<grader>", "exec"), namespace)
    return namespace["grade"]


def _grade(grade: Any, sample: Any, item: Any) -> dict[str, Any]:
    try:
        value = grade(sample, item)
    except BaseException as exc:  # noqa: BLE001 - SystemExit and MemoryError are grader faults too
        # Start at the grader's own frame, and drop its locals first: after a
        # MemoryError they hold the memory that formatting needs.
        tb = exc.__traceback__.tb_next if exc.__traceback__ else None
        traceback.clear_frames(tb)
        try:
            details = "".join(traceback.format_exception(type(exc), exc, tb))[-4000:]
        except MemoryError:
            details = type(exc).__name__
        return {"error": "runtime", "details": details}
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return {
            "error": "runtime",
            "details": f"grade returned {type(value).__name__}, not a number",
        }
    score = float(value)
    if not math.isfinite(score):
        return {"error": "runtime", "details": f"grade returned {score}, not a finite number"}
    return {"score": score}


def _serve(requests: BinaryIO, out: BinaryIO) -> None:
    graders: dict[str, Any] = {}
    for line in requests:
        request = json.loads(line)
        key = request["key"]
        if key not in graders:
            try:
                graders[key] = _load(request["source"])
            except BaseException:  # noqa: BLE001
                graders[key] = traceback.format_exc(limit=-8)[-4000:]
        grade = graders[key]
        for sample, item in request["tasks"]:
            if isinstance(grade, str):
                _send(out, {"error": "runtime", "details": f"source failed to load:\n{grade}"})
            else:
                _send(out, _grade(grade, sample, item))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        _send(out, {"done": True, "cpu": usage.ru_utime + usage.ru_stime})


def main() -> None:
    opts = json.loads(sys.argv[1])
    fd_in, fd_out = os.dup(0), os.dup(1)
    requests, out = os.fdopen(fd_in, "rb"), os.fdopen(fd_out, "wb")
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the server
    try:
        if opts["sandbox"]:
            _enter_namespaces(opts, keep=(fd_in, fd_out))
        else:
            _enter_plain(opts)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.environ["HOME"] = os.environ["TMPDIR"] = os.getcwd()
    except (OSError, ValueError) as exc:
        _send(out, {"fatal": f"sandbox setup failed: {exc}"})
        sys.exit(3)
    _send(out, {"ready": True, "sandboxed": bool(opts["sandbox"])})
    _serve(requests, out)


if __name__ == "__main__":
    main()
