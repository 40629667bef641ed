"""`openrft jobs watch`: a live progress display of a job's metrics until it ends.

On a terminal it draws a rich progress bar with the step and the headline metrics;
otherwise (a pipe, a log file) it prints one plain line per step.
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["metric_summary", "watch_job"]

TERMINAL = {"succeeded", "failed", "cancelled"}
# Headline metrics, in display order: reinforcement first, then supervised.
SHOWN = (("critic_rewards_mean", "reward"), ("valid_reward_mean", "valid"),
         ("actor_entropy", "entropy"), ("response_length_mean", "length"),
         ("train_loss", "loss"), ("valid_loss", "valid_loss"))  # fmt: skip


def metric_summary(data: dict[str, Any]) -> str:
    parts = [
        f"{label}={data[key]:.3f}"
        for key, label in SHOWN
        if isinstance(data.get(key), (int, float))
    ]
    return " ".join(parts)


def _new_metrics(client: Any, job_id: str, seen: set[int]) -> list[dict[str, Any]]:
    events = client.fine_tuning.jobs.list_events(job_id, limit=200).data
    fresh = [e.data for e in events if e.type == "metrics" and e.data["step"] not in seen]
    fresh.sort(key=lambda d: d["step"])
    seen.update(d["step"] for d in fresh)
    return fresh


def watch_job(client: Any, job_id: str, *, interval: float = 1.0, tty: bool | None = None) -> Any:
    """Follow `job_id` until it is finished (or paused); returns the last job object."""
    tty = sys.stdout.isatty() if tty is None else tty
    return (_watch_rich if tty else _watch_plain)(client, job_id, interval)


def _watch_plain(client: Any, job_id: str, interval: float) -> Any:
    seen: set[int] = set()
    status = None
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        for data in _new_metrics(client, job_id, seen):
            print(f"step {data['step']}/{data['total_steps']} {metric_summary(data)}", flush=True)
        if job.status != status:
            print(f"{job_id}: {job.status}", flush=True)
            status = job.status
        if job.status in TERMINAL or job.status == "paused":
            _report_end(job)
            return job
        time.sleep(interval)


def _watch_rich(client: Any, job_id: str, interval: float) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    seen: set[int] = set()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[metrics]}"))  # fmt: skip
    with Progress(*columns, refresh_per_second=4) as progress:
        task = progress.add_task(job_id, total=None, metrics="")
        while True:
            job = client.fine_tuning.jobs.retrieve(job_id)
            for data in _new_metrics(client, job_id, seen):
                progress.update(
                    task,
                    total=data["total_steps"],
                    completed=data["step"],
                    metrics=metric_summary(data),
                )
            progress.update(task, description=f"{job_id} {job.status}")
            if job.status in TERMINAL or job.status == "paused":
                break
            time.sleep(interval)
    _report_end(job)
    return job


def _report_end(job: Any) -> None:
    if job.status == "succeeded":
        print(f"fine-tuned model: {job.fine_tuned_model}", flush=True)
    elif job.error:
        print(f"error: {job.error.message}", flush=True)
