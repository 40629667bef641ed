"""The loop every training method runs in: step, metrics, evaluation, checkpoints,
control (cancel, pause, drain), resume. SFT and GRPO differ only in their `Method`."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

from openrft.store import now
from openrft.training._checkpoint import load_state, rng_state, save_state, set_rng_state
from openrft.training._data_parallel import Workers
from openrft.training._model import Policy, load_weights_into, save_weights
from openrft.training._runtime import JobRuntime

__all__ = ["LoopSettings", "Method", "run_loop"]

log = logging.getLogger("openrft.training")


class Method(Protocol):
    policy: Policy
    total_steps: int
    trained_tokens: int
    # The validation metric that ranks checkpoints, and its direction.
    best_metric: str | None
    higher_is_better: bool

    def train_step(self, step: int) -> dict[str, Any]: ...

    def evaluate(self, step: int) -> dict[str, Any]: ...

    def step_message(self, step: int, metrics: dict[str, Any]) -> str: ...

    def should_stop_early(self, history: list[dict[str, Any]]) -> bool: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class LoopSettings(Protocol):
    eval_interval: int
    checkpoint_interval: int


def _save(
    runtime: JobRuntime,
    method: Method,
    step: int,
    history: list[dict[str, Any]],
    metrics: dict[str, Any],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        save_weights(method.policy, folder / "model")
        save_state(
            folder,
            {
                "step": step,
                "method": method.state_dict(),
                "rng": rng_state(),
                "trained_tokens": method.trained_tokens,
                "history": history,
            },
        )
        numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        runtime.save_checkpoint(step, folder, numeric, weights_format=method.policy.weights_format)
    runtime.prune_checkpoints(
        keep=runtime.keep_checkpoints,
        metric=method.best_metric,
        higher_is_better=method.higher_is_better,
    )


def resume(runtime: JobRuntime, method: Method) -> tuple[int, list[dict[str, Any]]]:
    """Load the newest checkpoint, if any: returns the step it ended and the history."""
    row = runtime.store.jobs.latest_checkpoint(runtime.job.id)
    if row is None:
        return 0, []
    folder = runtime.checkpoint_path(row)
    state = load_state(folder)
    load_weights_into(method.policy, folder / "model")
    method.load_state_dict(state["method"])
    method.trained_tokens = state["trained_tokens"]
    set_rng_state(state["rng"])
    runtime.resumed(row.step_number)
    return row.step_number, list(state["history"])


def run_loop(
    runtime: JobRuntime, method: Method, hp: LoopSettings, workers: Workers | None = None
) -> str:
    """Train to the end or to a stop; returns "succeeded", "paused", "cancelled", ...

    With data-parallel `workers`, every rank runs this loop; rank 0 decides when to stop
    and tells the others, and alone saves checkpoints and the final model."""
    workers = workers or Workers()
    start, history = resume(runtime, method)
    # Rank 0's weights everywhere: a fresh LoRA adapter is random, and all ranks must agree.
    workers.broadcast_parameters([p for p in method.policy.model.parameters() if p.requires_grad])
    total = method.total_steps
    runtime.update(status="running", total_steps=total, started_at=runtime.job.started_at or now())
    runtime.event("Fine-tuning job started", key="started")
    started = time.monotonic()
    for step in range(start + 1, total + 1):
        metrics = method.train_step(step)
        if step % hp.eval_interval == 0 or step == total:
            metrics.update(method.evaluate(step))
        history.append({"step": step, **metrics})
        runtime.metrics(step, total, metrics, method.step_message(step, metrics))
        rollouts = getattr(method, "rollouts", None)
        if rollouts:
            runtime.rollouts(step, rollouts)
        per_step = (time.monotonic() - started) / (step - start)
        runtime.update(
            estimated_finish=now() + int(per_step * (total - step)),
            trained_tokens=method.trained_tokens,
        )
        reason, early = workers.broadcast(
            (runtime.stop_reason(), method.should_stop_early(history))
        )
        if reason == "lost" or reason == "cancel":
            runtime.release()
            return "cancelled" if reason == "cancel" else "lost"
        saving = step % hp.checkpoint_interval == 0 or step == total or early or reason
        if saving and workers.is_leader:
            _save(runtime, method, step, history, metrics)
        if reason == "pause":
            runtime.release(control=None)
            runtime.event(f"Fine-tuning job paused at step {step}", key=f"paused-{step}")
            return "paused"
        if reason == "drain":
            runtime.event(
                f"Checkpointed at step {step} as the server shut down; the job resumes "
                "when a worker is free",
                key=f"drained-{step}-{runtime.token}",
                step=step,
            )
            runtime.release()
            return "drained"
        if early:
            runtime.event(
                f"Stopping early at step {step}: the validation metric stopped improving",
                key="early-stop",
            )
            break
    if not workers.is_leader:
        return "succeeded"
    with tempfile.TemporaryDirectory() as tmp:
        save_weights(method.policy, Path(tmp))
        runtime.finish(
            Path(tmp),
            weights_format=method.policy.weights_format,
            history=history,
            trained_tokens=method.trained_tokens,
        )
    runtime.release()
    return "succeeded"
