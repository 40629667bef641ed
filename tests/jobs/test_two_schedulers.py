"""Several servers on one PostgreSQL and one data folder: each job runs exactly once, and
a server that dies hands its jobs to the other when their leases expire. Also the
`api` and `scheduler` roles apart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from openrft.store import Store
from support import Server, run_cli
from support.jobs import ALL_PAIRS, addition_lines, metrics_events, upload, wait_for
from support.postgres import PostgresCluster

JOBS = 20
STEPS = 8  # 20 examples, batch 5, 2 epochs
METHOD = {
    "type": "supervised",
    "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 5, "checkpoint_interval": 3}},
}


def _env(url: str, **extra: str) -> dict[str, str]:
    return {
        "OPENRFT_DATABASE_URL": url,
        "OPENRFT_LEASE_TTL_S": "3",
        "OPENRFT_HEARTBEAT_S": "0.5",
        "OPENRFT_SCHEDULER_INTERVAL_S": "0.2",
        # Two servers' workers share two cores: one thread each, not two fighting each.
        "OPENRFT_TORCH_THREADS": "1",
        **extra,
    }


def _workers(server: Server) -> set[str]:
    """Job ids of the worker processes in the server's process group."""
    assert server.proc is not None
    out = subprocess.run(
        ["pgrep", "-a", "-g", str(server.proc.pid), "-f", "openrft.training.worker"],
        capture_output=True,
        text=True,
    ).stdout
    return set(re.findall(r"--job-id (\S+)", out))


def _freeze_with_a_running_worker(server: Server, other: Server, timeout: float = 120) -> set[str]:
    """Stop the server's whole group (SIGSTOP) at a moment its workers are mid-job, and
    return their jobs; stopped, it can lease nothing more before it is killed. The
    `other` server answers meanwhile."""
    client = other.client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _workers(server):
            os.killpg(server.proc.pid, signal.SIGSTOP)
            running = {
                job_id for job_id in _workers(server) if len(metrics_events(client, job_id)) < STEPS
            }
            if running:
                return running
            os.killpg(server.proc.pid, signal.SIGCONT)
        time.sleep(0.1)
    raise AssertionError("the server never ran a worker")


def test_twenty_jobs_through_two_servers_one_killed(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    url = postgres.create_database()
    env = _env(url, OPENRFT_MAX_CONCURRENT_JOBS="2")
    first, second = Server(data_dir, env=env), Server(data_dir, env=env)
    run_cli("models", "init", "tiny", data_dir=data_dir)
    first.start()
    second.start()
    store = Store(database_url=url, blob_dir=data_dir / "blobs")
    try:
        clients = [first.client(), second.client()]
        # A file uploaded through one server trains jobs submitted through the other.
        files = [upload(c, addition_lines(ALL_PAIRS[:20], answer=True)) for c in clients]
        jobs = [
            clients[i % 2]
            .fine_tuning.jobs.create(
                model="tiny", training_file=files[1 - i % 2], seed=i, method=METHOD
            )
            .id
            for i in range(JOBS)
        ]
        listed = {j.id for j in clients[1].fine_tuning.jobs.list(limit=100)}
        assert set(jobs) <= listed

        while sum(store.jobs.by_id(j).status == "succeeded" for j in jobs) < 4:
            time.sleep(0.2)
        interrupted = _freeze_with_a_running_worker(first, second)
        first.kill()  # the whole group, workers included: a machine lost mid-job

        finished = [wait_for(clients[1], j, timeout=240) for j in jobs]
        assert [j.status for j in finished] == ["succeeded"] * JOBS, [j.error for j in finished]
        for job_id in jobs:
            # One metrics event per step, none repeated (a redone step replaces its own).
            steps = sorted(e.data["step"] for e in metrics_events(clients[1], job_id))
            assert steps == list(range(1, STEPS + 1)), job_id
            row = store.jobs.by_id(job_id)
            assert row.lease_token is None  # released by the worker that finished it
            messages = [e.message for e in clients[1].fine_tuning.jobs.list_events(job_id)]
            resumed = [m for m in messages if m.startswith("Resumed from the checkpoint")]
            if job_id in interrupted:
                # Leased once by the killed server, once more by the survivor when the
                # lease expired: a resume, not a second run beside the first.
                assert row.attempts == 2, job_id
                assert len(resumed) <= 1
            else:
                # Every other job was leased exactly once, by one of the two servers.
                assert row.attempts == 1, (job_id, row.attempts)
                assert resumed == []
    finally:
        store.close()
        first.stop()
        second.stop()


def test_api_and_scheduler_roles_apart(postgres: PostgresCluster, tmp_path: Path) -> None:
    """An `api` replica takes the job; only the `scheduler` process runs it, and the
    scheduler answers only the probes over HTTP."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    url = postgres.create_database()
    api = Server(data_dir, env=_env(url, OPENRFT_ROLE="api"))
    scheduler = Server(data_dir, env=_env(url, OPENRFT_ROLE="scheduler"))
    run_cli("models", "init", "tiny", data_dir=data_dir)
    api.start()
    try:
        client = api.client()
        train = upload(client, addition_lines(ALL_PAIRS[:20], answer=True))
        job_id = client.fine_tuning.jobs.create(model="tiny", training_file=train, method=METHOD).id
        time.sleep(2)  # no scheduler yet: the job waits, and nothing runs in the API's group
        assert client.fine_tuning.jobs.retrieve(job_id).status in ("validating_files", "queued")
        assert not _workers(api)

        scheduler.start()
        assert httpx.get(f"{scheduler.root_url}/readyz").json()["status"] == "ready"
        assert httpx.get(f"{scheduler.base_url}/models").status_code == 404
        done = wait_for(client, job_id, timeout=120)
        assert done.status == "succeeded", done.error
        assert not _workers(api)
        assert (data_dir / "logs" / f"{job_id}.log").exists()
    finally:
        api.stop()
        scheduler.stop()


def test_worker_role_needs_the_ray_executor(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "openrft.cli",
            "serve",
            "--role",
            "worker",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "Ray executor" in out.stderr
