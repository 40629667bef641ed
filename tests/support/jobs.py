"""Data and polling helpers for job tests."""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path

import openai
import torch
from safetensors.torch import load_file

TERMINAL = {"succeeded", "failed", "cancelled"}


def addition_lines(pairs: list[tuple[int, int]], *, answer: bool) -> bytes:
    lines = []
    for a, b in pairs:
        messages = [{"role": "user", "content": f"{a}+{b}="}]
        if answer:
            messages.append({"role": "assistant", "content": str(a + b)})
            lines.append({"messages": messages})
        else:
            lines.append({"messages": messages, "reference_answer": str(a + b)})
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


ALL_PAIRS = [(a, b) for a in range(10) for b in range(10)]


def upload(client: openai.OpenAI, data: bytes, name: str = "train.jsonl") -> str:
    return client.files.create(file=(name, io.BytesIO(data)), purpose="fine-tune").id


def wait_for(client: openai.OpenAI, job_id: str, *, statuses=TERMINAL, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still {job.status} after {timeout}s")


def metrics_events(client: openai.OpenAI, job_id: str) -> list:
    events = list(client.fine_tuning.jobs.list_events(job_id, limit=1000))
    return [e for e in events if e.type == "metrics"]


def wait_for_step(client: openai.OpenAI, job_id: str, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = client.fine_tuning.jobs.list_events(job_id, limit=1).data
        if events and events[0].type == "metrics" and events[0].data["step"] >= step:
            return
        if any(
            e.type == "metrics" and e.data["step"] >= step for e in metrics_events(client, job_id)
        ):
            return
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached step {step}")


def wait_for_pause_event(client: openai.OpenAI, job_id: str, timeout: float = 60) -> None:
    """Until the worker has acted on a pause: its "paused at step N" event is written."""
    deadline = time.monotonic() + timeout
    while not any(
        "paused at step" in e.message for e in client.fine_tuning.jobs.list_events(job_id)
    ):
        assert time.monotonic() < deadline, "the worker never acted on the pause"
        time.sleep(0.2)


def assert_one_event_per_step(client: openai.OpenAI, job_id: str, steps: int) -> None:
    seen = sorted(e.data["step"] for e in metrics_events(client, job_id))
    assert seen == list(range(1, steps + 1))


def assert_drained_then_resumed(client: openai.OpenAI, job_id: str, steps: int) -> int:
    """After a server's SIGTERM drain and a restart: exactly one "Checkpointed at step N"
    event at the last step reached, the job finishing with one metrics event per step,
    and "Resumed from the checkpoint at step N". Returns N."""
    events = list(client.fine_tuning.jobs.list_events(job_id, limit=1000))
    drained = [e for e in events if e.message.startswith("Checkpointed at step")]
    assert len(drained) == 1
    reached = max(e.data["step"] for e in events if e.type == "metrics")
    assert drained[0].message.startswith(f"Checkpointed at step {reached} ")
    assert reached < steps
    done = wait_for(client, job_id)
    assert done.status == "succeeded", done.error
    assert_one_event_per_step(client, job_id, steps)
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=1000)]
    assert f"Resumed from the checkpoint at step {reached}" in messages
    return reached


def final_weights(data_dir: Path, job_id: str) -> dict[str, torch.Tensor]:
    return load_file(str(data_dir / "blobs" / "jobs" / job_id / "final" / "model.safetensors"))


def worker_pid(job_id: str) -> int:
    return worker_pids(job_id)[0]


def worker_pids(job_id: str) -> list[int]:
    """The job's worker processes (every data-parallel rank), oldest first."""
    out = subprocess.run(
        ["pgrep", "-f", f"openrft.training.worker --job-id {job_id}"],
        capture_output=True,
        text=True,
    )
    return [int(pid) for pid in out.stdout.split()]


# The untrained tiny model writes noise: reward the share of digits, so groups differ.
DIGITS_GRADER = {
    "type": "python",
    "name": "digits",
    "source": "def grade(sample, item):\n"
    "    text = sample['output_text']\n"
    "    return sum(c.isdigit() for c in text) / max(1, len(text))\n",
}


def reinforcement_job(
    client: openai.OpenAI, training_file: str, workers: int, validation: str | None = None, **hp
) -> str:
    """A 3-step GRPO job on `workers` data-parallel ranks (8 prompts, groups of 4)."""
    hyperparameters = {
        "batch_size": 8, "group_size": 4, "max_completion_tokens": 4, "n_epochs": 1,
        "max_steps": 3, "early_stopping": False, "num_workers": workers,
        "learning_rate_multiplier": 5.0, **hp,
    }  # fmt: skip
    job = client.fine_tuning.jobs.create(
        model="tiny", training_file=training_file, validation_file=validation, seed=11,
        method={"type": "reinforcement",
                "reinforcement": {"grader": DIGITS_GRADER, "hyperparameters": hyperparameters}},
    )  # fmt: skip
    return job.id
