"""The python grader's sandbox (Decision 7): each attack fails, the pool survives.

Needs root (namespaces, setuid); where the sandbox cannot be set up the tests
that need it are skipped and the fail-closed test still runs.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from asyncio import run
from collections.abc import Iterator
from typing import Any

import pytest

from openrft.errors import InvalidRequest
from openrft.graders import GSM8K_GRADER_SOURCE, GradeResult, GraderSettings, GradingService, Sample

NORMAL = (
    "def grade(sample, item):\n    return 1.0 if sample['output_text'] == item['ref'] else 0.0\n"
)
PROBES = """
import os, socket
def grade(sample, item):
    kind = item["probe"]
    if kind == "net":
        s = socket.create_connection(("127.0.0.1", item["port"]), timeout=2)
        return 1.0
    if kind == "file":
        with open(item["path"]) as f:
            return 1.0 if "SECRET" in f.read() else 0.5
    if kind == "environ":
        leaked = any("SECRET" in v for v in os.environ.values())
        try:  # the worker's own start-up environment
            with open("/proc/1/environ") as f:
                leaked = leaked or "SECRET" in f.read()
        except OSError:
            pass
        return 1.0 if leaked else 0.0
    if kind == "identity":
        return float(os.getuid() == 65534 and os.getpid() == 1 and os.getcwd() == "/tmp/work")
    if kind == "libraries":
        import numpy, sympy, rapidfuzz
        return float(numpy.sum([0.25, 0.25]) + int(sympy.Integer(0)) + rapidfuzz.fuzz.ratio("a", "a") / 200)
    if kind == "fork_bomb":
        while True:
            try:
                os.fork()
            except OSError:
                pass
    if kind == "memory_bomb":
        hog = []
        while True:
            hog.append(bytearray(64 * 1024 * 1024))
    if kind == "loop":
        while True:
            pass
    if kind == "raise":
        raise ValueError("bad item")
    if kind == "text":
        return "1.0"
    if kind == "nan":
        return float("nan")
    if kind == "counter":
        global CALLS
        CALLS = globals().get("CALLS", 0) + 1
        return float(CALLS)
    return 0.0
"""


def _sandbox_works() -> bool:
    return os.geteuid() == 0


needs_sandbox = pytest.mark.skipif(not _sandbox_works(), reason="the sandbox needs root here")


@pytest.fixture
def data_dir() -> Iterator[str]:
    # A world-readable folder outside /tmp (the sandbox has its own /tmp), as
    # the server's data folder might be; only the sandbox's masking protects it.
    path = tempfile.mkdtemp(prefix="openrft-data-", dir="/var/tmp")
    os.chmod(path, 0o755)
    secret = os.path.join(path, "secret.txt")
    with open(secret, "w") as f:
        f.write("SECRET token\n")
    os.chmod(secret, 0o644)
    yield path
    os.remove(secret)
    os.rmdir(path)


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.close()
    assert not accepted, "a sandboxed grader reached a loopback server"


def _nobody_processes() -> set[int]:
    """PIDs run by `nobody`; the test compares with a snapshot, since other servers of the
    test session keep sandbox workers of their own."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid == 65534:
                found.add(int(pid))
        except FileNotFoundError:
            pass
    return found


@needs_sandbox
def test_attacks_fail_and_the_pool_stays_healthy(
    data_dir: str, listener: int, monkeypatch: Any
) -> None:
    before = _nobody_processes()
    monkeypatch.setenv("OPENRFT_TEST_TOKEN", "SECRET")  # the server's environment
    settings = GraderSettings(python_workers=2, python_timeout_s=2.0, python_memory_mb=512,
                              python_max_processes=32, hidden_paths=(data_dir,))  # fmt: skip
    secret = os.path.join(data_dir, "secret.txt")
    with open(secret) as f:
        assert "SECRET" in f.read()  # readable outside the sandbox

    async def main() -> dict[str, GradeResult]:
        async with GradingService(settings=settings) as service:
            probes = service.parse({"type": "python", "name": "probe", "source": PROBES})
            normal = service.parse({"type": "python", "name": "normal", "source": NORMAL})
            results = {}
            for probe in (
                "identity",
                "libraries",
                "net",
                "file",
                "environ",
                "fork_bomb",
                "memory_bomb",
                "loop",
            ):
                item = {"probe": probe, "port": listener, "path": secret}
                results[probe] = await service.grade(probes, Sample(output_text=""), item)
                healthy = await service.grade(normal, Sample(output_text="ok"), {"ref": "ok"})
                assert healthy.score == 1.0 and not healthy.errors.any, (probe, healthy)
            return results

    results = run(main())
    assert results["identity"].score == 1.0  # uid nobody, PID 1 of its namespace, empty folder
    assert results["libraries"].score == 1.0
    for probe in ("net", "file"):  # refused: an exception in the grader, so score 0
        assert results[probe].score == 0.0
        assert results[probe].errors.python_grader_runtime_error
    assert "Network is unreachable" in results["net"].errors.python_grader_runtime_error_details
    assert results["environ"].score == 0.0 and not results["environ"].errors.any
    for probe in ("fork_bomb", "loop"):
        assert results[probe].errors.python_grader_server_error_type == "timeout"
    assert results["memory_bomb"].score == 0.0
    memory = results["memory_bomb"].errors
    assert "MemoryError" in (memory.python_grader_runtime_error_details or ""), memory
    # The fork bomb's children died with their namespace, and closing the
    # service ended its workers (PR_SET_PDEATHSIG acts within moments).
    deadline = time.monotonic() + 5
    while _nobody_processes() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _nobody_processes() - before == set()


@needs_sandbox
def test_bad_results_set_the_runtime_flag_and_workers_are_reused() -> None:
    async def main() -> list[GradeResult]:
        async with GradingService(settings=GraderSettings(python_workers=1)) as service:
            grader = service.parse({"type": "python", "name": "probe", "source": PROBES})
            probes = ["raise", "text", "nan", "counter", "counter"]
            first = await service.grade_batch(
                grader, [Sample(output_text="")] * 5, [{"probe": p} for p in probes]
            )
            again = await service.grade(grader, Sample(output_text=""), {"probe": "counter"})
            return [*first, again]

    raised, text, nan, one, two, three = run(main())
    assert "ValueError: bad item" in raised.errors.python_grader_runtime_error_details
    assert "not a number" in text.errors.python_grader_runtime_error_details
    assert "not a finite number" in nan.errors.python_grader_runtime_error_details
    assert all(r.score == 0.0 for r in (raised, text, nan))
    assert (one.score, two.score, three.score) == (1.0, 2.0, 3.0)  # one process across calls


@needs_sandbox
def test_gsm8k_grader_source_runs_in_the_sandbox() -> None:
    async def main() -> list[float]:
        async with GradingService() as service:
            grader = service.parse(
                {"type": "python", "name": "gsm8k", "source": GSM8K_GRADER_SOURCE}
            )
            samples = [Sample(output_text=t) for t in ("#### 1,234", "#### 12", "no answer")]
            results = await service.grade_batch(
                grader, samples, [{"reference_answer": "#### 1234"}] * 3
            )
            return [r.score for r in results]

    assert run(main()) == [1.0, 0.0, 0.0]


def test_fails_closed_without_a_sandbox() -> None:
    config = {"type": "python", "name": "p", "source": NORMAL}
    closed = GraderSettings(sandbox_user="no-such-user-here")

    async def refused() -> None:
        async with GradingService(settings=closed) as service:
            await service.validate(config)

    with pytest.raises(InvalidRequest) as caught:
        run(refused())
    assert (
        caught.value.param == "grader.type" and "--allow-unsandboxed-python" in caught.value.message
    )

    async def allowed() -> float:
        settings = GraderSettings(sandbox_user="no-such-user-here", allow_unsandboxed_python=True)
        async with GradingService(settings=settings) as service:
            grader = await service.validate(config)
            return (await service.grade(grader, Sample(output_text="a"), {"ref": "a"})).score

    assert run(allowed()) == 1.0


def test_grading_without_a_sandbox_flags_a_server_error() -> None:
    async def main() -> GradeResult:
        async with GradingService(
            settings=GraderSettings(sandbox_user="no-such-user-here")
        ) as service:
            grader = service.parse({"type": "python", "name": "p", "source": NORMAL})
            return await service.grade(grader, Sample(output_text="a"), {"ref": "a"})

    result = run(main())
    assert (
        result.score == 0.0
        and result.errors.python_grader_server_error_type == "sandbox_unavailable"
    )
