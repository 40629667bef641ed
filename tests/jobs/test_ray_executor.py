"""Jobs through the Ray executor, on a real local Ray cluster (`ray start --head`, 2 CPUs):
end to end, cancel, pause/resume, a worker killed mid-job resuming elsewhere, and a
data-parallel job whose ranks are Ray actors of one placement group."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import torch

from support import Server, free_port, run_cli, tiny_model_server
from support.jobs import (
    ALL_PAIRS,
    addition_lines,
    assert_drained_then_resumed,
    assert_one_event_per_step,
    final_weights,
    metrics_events,
    reinforcement_job,
    upload,
    wait_for,
    wait_for_pause_event,
    wait_for_step,
    worker_pid,
    worker_pids,
)

pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'openrft[ray]')")


def start_job(client: openai.OpenAI, *, n_epochs: int, seed: int = 11) -> str:
    """100 examples in batches of 10: 10 steps an epoch, a checkpoint every 5."""
    train = upload(client, addition_lines(ALL_PAIRS, answer=True))
    hp = {"n_epochs": n_epochs, "batch_size": 10, "checkpoint_interval": 5}
    return client.fine_tuning.jobs.create(
        model="tiny",
        training_file=train,
        seed=seed,
        method={"type": "supervised", "supervised": {"hyperparameters": hp}},
    ).id


class RayCluster:
    """A one-node Ray cluster on loopback, in its own session so stopping it stops only it."""

    def __init__(self) -> None:
        self.port = free_port()
        # Short: Ray puts unix sockets under it (a socket path has ~100 bytes).
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rft-ray-", dir="/tmp"))
        self.log = self.temp_dir / "ray-start.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> RayCluster:
        ray = Path(sys.executable).parent / "ray"
        # --block keeps `ray start` in the foreground as the parent of the cluster's
        # processes, so SIGTERM to it stops this cluster and no other (`ray stop` would
        # stop every Ray cluster of this user on the machine). Fixed default ports are
        # made free ones, so two test runs do not collide.
        ports = {
            "--dashboard-port": free_port(),
            "--ray-client-server-port": free_port(),
            "--dashboard-agent-listen-port": free_port(),
        }
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(ray), "start", "--head", "--block",
                    "--node-ip-address", "127.0.0.1", "--port", str(self.port),
                    "--num-cpus", "2", "--num-gpus", "0",
                    "--include-dashboard=false", "--disable-usage-stats",
                    "--temp-dir", str(self.temp_dir),
                    *(str(x) for pair in ports.items() for x in pair),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while "will now block forever" not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ray start failed:\n{self.log.read_text()[-4000:]}")
            time.sleep(0.2)
        return self

    def session_pids(self) -> list[int]:
        """Every live process of this cluster: all share the session `ray start` opened
        (Ray's workers take their own process group, but not their own session)."""
        assert self.proc is not None
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getsid(int(entry.name)) == self.proc.pid:
                        pids.append(int(entry.name))
                except ProcessLookupError:
                    pass
        return pids

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # drains and stops the node's processes
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=60)
        for pid in self.session_pids():  # whatever outlived the drain
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    cluster = RayCluster().start()
    yield cluster
    cluster.stop()


def ray_env(cluster: RayCluster) -> dict[str, str]:
    """A server whose jobs run on `cluster` (the same as `--executor ray --ray-address`)."""
    return {
        "OPENRFT_EXECUTOR": "ray",
        "OPENRFT_RAY_ADDRESS": cluster.address,
        "OPENRFT_LEASE_TTL_S": "4",
        "OPENRFT_HEARTBEAT_S": "0.5",
        "OPENRFT_SCHEDULER_INTERVAL_S": "0.2",
    }


@pytest.fixture(scope="module")
def ray_server(
    ray_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with tiny_model_server(tmp_path_factory.mktemp("ray-jobs"), env=ray_env(ray_cluster)) as srv:
        yield srv


def ray_actor_of(cluster: RayCluster, pid: int) -> int:
    """The Ray actor process of this cluster that started worker `pid` (not the server)."""
    assert pid in cluster.session_pids()
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert Path(f"/proc/{parent}/cmdline").read_bytes().startswith(b"ray::WorkerProcess")
    return parent


def assert_runs_under_ray(cluster: RayCluster, job_id: str) -> int:
    """The job's worker is a child of a Ray actor of this cluster, not of the server."""
    pid = worker_pid(job_id)
    ray_actor_of(cluster, pid)
    return pid


def placement_groups(cluster: RayCluster) -> list[str]:
    """The states of the cluster's placement groups, as a separate Ray driver sees them."""
    code = (
        "import json, ray; ray.init(address=%r, logging_level='ERROR'); "
        "print(json.dumps([g['state'] for g in ray.util.placement_group_table().values()]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code % cluster.address],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def wait_gone(cluster: RayCluster, pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while pid in cluster.session_pids():
        assert time.monotonic() < deadline, f"worker {pid} is still running"
        time.sleep(0.2)


def test_supervised_job_end_to_end_on_ray(ray_server: Server) -> None:
    client = ray_server.client()
    job_id = start_job(client, seed=5, n_epochs=1)  # 10 steps, checkpoints at 5 and 10
    done = wait_for(client, job_id, timeout=120)
    assert done.status == "succeeded", done.error
    assert_one_event_per_step(client, job_id, 10)
    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job_id))
    assert [c.step_number for c in checkpoints] == [10, 5]
    reply = client.chat.completions.create(
        model=done.fine_tuned_model, messages=[{"role": "user", "content": "2+3="}], max_tokens=4
    )
    assert reply.choices[0].message.role == "assistant"
    assert reply.model == done.fine_tuned_model
    # The worker wrote its log where the local executor writes it (one-node cluster).
    assert "job " + job_id in (ray_server.data_dir / "logs" / f"{job_id}.log").read_text()


def test_cancel_stops_the_ray_worker(ray_server: Server, ray_cluster: RayCluster) -> None:
    client = ray_server.client()
    job_id = start_job(client, n_epochs=6)
    wait_for_step(client, job_id, 2)
    pid = assert_runs_under_ray(ray_cluster, job_id)
    assert client.fine_tuning.jobs.cancel(job_id).status == "cancelled"
    at_cancel = max(e.data["step"] for e in metrics_events(client, job_id))
    wait_gone(ray_cluster, pid)  # the worker exits by itself
    assert max(e.data["step"] for e in metrics_events(client, job_id)) <= at_cancel + 1
    assert client.fine_tuning.jobs.retrieve(job_id).status == "cancelled"


def test_pause_and_resume_on_ray(ray_server: Server, ray_cluster: RayCluster) -> None:
    client = ray_server.client()
    job_id = start_job(client, n_epochs=2)
    wait_for_step(client, job_id, 3)
    first = assert_runs_under_ray(ray_cluster, job_id)
    assert client.fine_tuning.jobs.pause(job_id).status == "paused"
    wait_for_pause_event(client, job_id)
    stopped_at = max(e.data["step"] for e in metrics_events(client, job_id))
    time.sleep(1.0)
    assert max(e.data["step"] for e in metrics_events(client, job_id)) == stopped_at
    wait_gone(ray_cluster, first)
    assert client.fine_tuning.jobs.resume(job_id).status == "queued"
    done = wait_for(client, job_id, timeout=120)
    assert done.status == "succeeded", done.error
    assert_one_event_per_step(client, job_id, 20)


def test_worker_killed_on_ray_resumes_from_its_checkpoint(
    ray_server: Server, ray_cluster: RayCluster
) -> None:
    """A worker gone mid-job (as when its node is lost): the actor's call fails, the
    scheduler frees the lease, and a new actor resumes from the last checkpoint."""
    client = ray_server.client()
    job_id = start_job(client, n_epochs=2)  # 20 steps
    wait_for_step(client, job_id, 6)  # the checkpoint at step 5 is written before step 6
    pid = assert_runs_under_ray(ray_cluster, job_id)
    os.kill(pid, signal.SIGSTOP)  # freeze it, then check it is really mid-job
    assert max(e.data["step"] for e in metrics_events(client, job_id)) < 20
    os.kill(pid, signal.SIGKILL)
    done = wait_for(client, job_id, timeout=120)
    assert done.status == "succeeded", done.error
    assert_one_event_per_step(client, job_id, 20)
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=1000)]
    assert any(m.startswith("Resumed from the checkpoint at step") for m in messages)


def test_server_sigterm_drains_the_ray_worker(ray_cluster: RayCluster, tmp_path: Path) -> None:
    """SIGTERM to the server: it tells its Ray worker to checkpoint (through the actor,
    since the worker is not in the server's process group) and exits; a restarted server
    resumes the job from exactly that step."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    run_cli("models", "init", "tiny", data_dir=data_dir)
    server = Server(data_dir, env=ray_env(ray_cluster)).start()
    try:
        client = server.client()
        job_id = start_job(client, n_epochs=2)  # 20 steps
        wait_for_step(client, job_id, 3)
        pid = assert_runs_under_ray(ray_cluster, job_id)
        os.kill(server.proc.pid, signal.SIGTERM)
        assert server.proc.wait(timeout=60) in (0, -signal.SIGTERM)
        server.proc = None
        assert pid not in ray_cluster.session_pids()  # drained before the server exited

        server = Server(data_dir, env=ray_env(ray_cluster)).start()
        client = server.client()
        assert_drained_then_resumed(client, job_id, 20)
    finally:
        server.stop()


def test_data_parallel_job_places_its_ranks_through_ray(
    ray_server: Server, ray_cluster: RayCluster
) -> None:
    """`num_workers: 2` on the 2-CPU cluster: two 1-CPU actors in one placement group, each
    starting one rank with the rendezvous flags; the weights equal a one-worker job's, and
    the actors and the placement group are gone afterwards."""
    client = ray_server.client()
    train = upload(client, addition_lines(ALL_PAIRS, answer=False), "rl.jsonl")
    two = reinforcement_job(client, train, 2)
    one = reinforcement_job(client, train, 1)  # queued: one job at a time
    deadline = time.monotonic() + 90
    while len(pids := worker_pids(two)) < 2:
        assert time.monotonic() < deadline, f"ranks of {two} not started: {pids}"
        time.sleep(0.1)
    argvs = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in pids]
    # Every rank, rank 0 included, was given its place, so none started local children.
    assert sorted(argv[argv.index(b"--rank") + 1] for argv in argvs) == [b"0", b"1"]
    assert all(argv[argv.index(b"--world-size") + 1] == b"2" for argv in argvs)
    assert len({ray_actor_of(ray_cluster, pid) for pid in pids}) == 2  # one actor each

    done = {job_id: wait_for(client, job_id, timeout=180) for job_id in (two, one)}
    for job in done.values():
        assert job.status == "succeeded", job.error
    log = (ray_server.data_dir / "logs" / f"{two}.log").read_text()
    assert f"job {two} rank 1: succeeded" in log  # the second rank really trained
    w1, w2 = final_weights(ray_server.data_dir, one), final_weights(ray_server.data_dir, two)
    assert w1.keys() == w2.keys()
    for name in w1:  # the tolerance of tests/jobs/test_data_parallel_jobs.py
        torch.testing.assert_close(w2[name], w1[name], rtol=1e-4, atol=1e-5)

    for pid in pids:
        wait_gone(ray_cluster, pid)
    deadline = time.monotonic() + 60
    while set(states := placement_groups(ray_cluster)) != {"REMOVED"}:
        assert time.monotonic() < deadline, states
        time.sleep(1.0)


def test_lost_rank_on_ray_resumes_the_job(ray_server: Server, ray_cluster: RayCluster) -> None:
    """Rank 1 killed mid-job (as when its node is lost): rank 0 fails its next collective
    and exits holding the lease; the job is reaped and resumes, on a new placement group,
    from its last checkpoint; nothing of the first attempt is left."""
    client = ray_server.client()
    train = upload(client, addition_lines(ALL_PAIRS, answer=False), "rl.jsonl")
    job_id = reinforcement_job(client, train, 2, max_steps=8, checkpoint_interval=2)
    wait_for_step(client, job_id, 3)  # the checkpoint at step 2 is written before step 3
    pids = worker_pids(job_id)
    argvs = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in pids}
    (follower,) = [pid for pid, argv in argvs.items() if argv[argv.index(b"--rank") + 1] == b"1"]
    os.kill(follower, signal.SIGSTOP)  # freeze it, then check it is really mid-job
    assert max(e.data["step"] for e in metrics_events(client, job_id)) < 8
    os.kill(follower, signal.SIGKILL)
    for pid in pids:
        wait_gone(ray_cluster, pid)
    done = wait_for(client, job_id, timeout=120)
    assert done.status == "succeeded", done.error
    assert_one_event_per_step(client, job_id, 8)
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=1000)]
    assert any(m.startswith("Resumed from the checkpoint at step") for m in messages)
    log = (ray_server.data_dir / "logs" / f"{job_id}.log").read_text()
    assert f"job {job_id}: a data-parallel rank was lost" in log  # not a failed job
    deadline = time.monotonic() + 60
    while set(states := placement_groups(ray_cluster)) != {"REMOVED"}:
        assert time.monotonic() < deadline, states
        time.sleep(1.0)
    assert len(states) >= 2  # the data-parallel job's first attempt and its resumption
