"""Cancel, pause/resume and crash recovery of jobs: exact, with one event per step."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import openai
import torch

from support import Server, run_cli
from support.jobs import (
    ALL_PAIRS,
    addition_lines,
    assert_drained_then_resumed,
    assert_one_event_per_step,
    final_weights,
    metrics_events,
    upload,
    wait_for,
    wait_for_pause_event,
    wait_for_step,
    worker_pid,
)

STEPS = 20
METHOD = {
    "type": "supervised",
    "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 10, "checkpoint_interval": 5}},
}


def start_job(client: openai.OpenAI, seed: int = 11, n_epochs: int = 2) -> str:
    train = upload(client, addition_lines(ALL_PAIRS, answer=True))
    method = {
        "type": "supervised",
        "supervised": {
            "hyperparameters": {**METHOD["supervised"]["hyperparameters"], "n_epochs": n_epochs}
        },
    }
    return client.fine_tuning.jobs.create(
        model="tiny", training_file=train, seed=seed, method=method
    ).id


def test_pause_resume_equals_uninterrupted(job_server) -> None:
    client = job_server.client()
    straight = start_job(client)
    assert wait_for(client, straight).status == "succeeded"

    paused = start_job(client)
    wait_for_step(client, paused, 3)
    job = client.fine_tuning.jobs.pause(paused)
    assert job.status == "paused"  # as the live API returns it (outside the SDK's enum)
    wait_for_pause_event(client, paused)
    stopped_at = max(e.data["step"] for e in metrics_events(client, paused))
    time.sleep(1.5)
    assert max(e.data["step"] for e in metrics_events(client, paused)) == stopped_at
    assert client.fine_tuning.jobs.retrieve(paused).status == "paused"
    assert client.fine_tuning.jobs.resume(paused).status == "queued"
    assert wait_for(client, paused).status == "succeeded"
    assert_one_event_per_step(client, paused, STEPS)

    a, b = final_weights(job_server.data_dir, straight), final_weights(job_server.data_dir, paused)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6)


def test_cancel_stops_within_a_step(job_server) -> None:
    client = job_server.client()
    job_id = start_job(client)
    wait_for_step(client, job_id, 2)
    cancelled = client.fine_tuning.jobs.cancel(job_id)
    assert cancelled.status == "cancelled"
    at_cancel = max(e.data["step"] for e in metrics_events(client, job_id))
    time.sleep(3)
    assert max(e.data["step"] for e in metrics_events(client, job_id)) <= at_cancel + 1
    assert client.fine_tuning.jobs.retrieve(job_id).status == "cancelled"
    try:
        client.fine_tuning.jobs.resume(job_id)
        raise AssertionError("a cancelled job must not resume")
    except openai.BadRequestError as err:
        assert "cancelled" in err.message


def test_worker_killed_mid_job_resumes(job_server) -> None:
    client = job_server.client()
    job_id = start_job(client, n_epochs=6)  # 60 steps: the kill must land mid-job
    wait_for_step(client, job_id, 6)  # the checkpoint at step 5 is written before step 6
    pid = worker_pid(job_id)
    os.kill(pid, signal.SIGSTOP)  # freeze it, then check it is really mid-job
    assert max(e.data["step"] for e in metrics_events(client, job_id)) < 60
    os.kill(pid, signal.SIGKILL)
    done = wait_for(client, job_id)
    assert done.status == "succeeded", done.error
    assert_one_event_per_step(client, job_id, 60)
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=1000)]
    assert any(m.startswith("Resumed from the checkpoint at step") for m in messages)


def test_server_killed_mid_job_resumes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    run_cli("models", "init", "tiny", data_dir=data_dir)
    env = {"OPENRFT_LEASE_TTL_S": "3", "OPENRFT_HEARTBEAT_S": "0.5"}
    server = Server(data_dir, env=env).start()
    try:
        client = server.client()
        job_id = start_job(client)
        wait_for_step(client, job_id, 7)
        server.kill()  # the whole process group: server and worker, like a power cut
        server = Server(data_dir, env=env)
        server.start()
        client = server.client()
        done = wait_for(client, job_id)
        assert done.status == "succeeded", done.error
        assert_one_event_per_step(client, job_id, STEPS)
    finally:
        server.stop()


def test_sigterm_drains_and_the_job_resumes_without_lost_steps(tmp_path: Path) -> None:
    """SIGTERM to the server alone (as `docker stop` sends it): it stops accepting, tells
    its worker to checkpoint, waits for it and exits; after a restart the job goes on
    from exactly the step it had reached."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    run_cli("models", "init", "tiny", data_dir=data_dir)
    env = {"OPENRFT_LEASE_TTL_S": "3", "OPENRFT_HEARTBEAT_S": "0.5"}
    server = Server(data_dir, env=env).start()
    try:
        client = server.client()
        job_id = start_job(client, n_epochs=6)  # 60 steps
        wait_for_step(client, job_id, 3)
        pid = worker_pid(job_id)
        os.kill(server.proc.pid, signal.SIGTERM)
        # uvicorn re-raises the signal once its graceful shutdown is done, so the exit
        # status says "terminated by SIGTERM"; what matters is that the worker went first.
        assert server.proc.wait(timeout=60) in (0, -signal.SIGTERM)
        assert subprocess.run(["ps", "-p", str(pid)], capture_output=True).returncode != 0
        server.proc = None

        server = Server(data_dir, env=env).start()
        client = server.client()
        assert_drained_then_resumed(client, job_id, 60)
    finally:
        server.stop()
