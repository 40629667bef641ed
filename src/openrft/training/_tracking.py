"""Experiment tracking: each step's metrics, the same ones the metrics event carries,
sent to TensorBoard event files (every job) and to Weights & Biases (a job whose
`integrations` asks for it, as OpenAI's API defines it).

Tracking is a convenience beside the job, never a reason for it to fail: a backend
that cannot start or write (wandb not installed, no network) becomes one warning
event naming it, and the job trains on without it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "TensorBoardTracker",
    "Tracker",
    "Tracking",
    "WandbTracker",
    "scalars",
    "trackers_for",
]

log = logging.getLogger("openrft.training")

# The step axis, not metrics.
_AXIS = {"step", "total_steps"}
# W&B refuses tags longer than 64 characters.
_MAX_TAG = 64


def scalars(data: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers of a metrics payload, nested ones flattened with `/` (which TensorBoard
    and W&B both draw as sections): `timing/step/sampling`, and per-grader scores, a list
    of named dicts, as `scores/graders/NAME/train_reward_mean`."""
    out: dict[str, float] = {}
    for key, value in data.items():
        if not prefix and key in _AXIS:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(scalars(value, f"{name}/"))
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    out.update(scalars(item, f"{name}/{item['name']}/"))
        elif isinstance(value, (int, float)):
            out[name] = float(value)
    return out


class Tracker(Protocol):
    """One backend. `open` is called before the first `log` of a worker's run, at
    `step` (the first step this worker trains: after a resume, the checkpoint's plus one)."""

    name: str

    def open(self, *, step: int, config: dict[str, Any]) -> None: ...

    def log(self, step: int, values: dict[str, float]) -> None: ...

    def close(self, *, failed: bool) -> None: ...


class TensorBoardTracker:
    """Event files in `folder`, written with tensorboardX: it needs only numpy and
    protobuf, where `torch.utils.tensorboard` needs the whole `tensorboard` package."""

    name = "tensorboard"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._writer: Any = None

    def open(self, *, step: int, config: dict[str, Any]) -> None:
        from tensorboardX import SummaryWriter

        self.folder.mkdir(parents=True, exist_ok=True)
        # A resumed job redoes the steps after its checkpoint: `purge_step` makes
        # TensorBoard drop what an earlier worker wrote from that step on.
        self._writer = SummaryWriter(
            logdir=str(self.folder),
            purge_step=step if step > 1 else None,
            # Names hold the second a file was made, and TensorBoard reads files in name
            # order: nanoseconds keep two workers' files apart and in order.
            filename_suffix=f".{time.time_ns()}",
        )

    def log(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self._writer.add_scalar(tag, value, global_step=step)
        # Flushed each step, so `tensorboard --logdir` shows a running job live.
        self._writer.flush()

    def close(self, *, failed: bool) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class WandbTracker:
    """A W&B run for the job: `WANDB_MODE=offline` (read by wandb itself) writes it under
    `folder` for `wandb sync` to upload later. The run id is the job id, so a paused or
    recovered job continues the same run."""

    name = "wandb"

    def __init__(self, settings: dict[str, Any], *, job_id: str, base_model: str, folder: Path):
        self.settings = settings
        self.job_id = job_id
        self.base_model = base_model
        self.folder = folder
        self._run: Any = None

    def _tags(self) -> list[str]:
        # OpenAI adds "openai/finetune", "openai/{base-model}", "openai/{job id}".
        ours = ["openrft/finetune", f"openrft/{self.base_model}", f"openrft/{self.job_id}"]
        return [t[:_MAX_TAG] for t in [*(self.settings.get("tags") or []), *ours]]

    def open(self, *, step: int, config: dict[str, Any]) -> None:
        import wandb  # an optional extra: imported only for a job that asks for it

        self.folder.mkdir(parents=True, exist_ok=True)
        self._run = wandb.init(
            project=self.settings["project"],
            entity=self.settings.get("entity"),
            name=self.settings.get("name") or self.job_id,
            tags=self._tags(),
            config=config,
            id=self.job_id,
            resume="allow",
            dir=str(self.folder),
            # The worker's own logs stay where they are; wandb need not wrap them.
            settings=wandb.Settings(console="off"),
        )

    def log(self, step: int, values: dict[str, float]) -> None:
        self._run.log(values, step=step)

    def close(self, *, failed: bool) -> None:
        if self._run is not None:
            self._run.finish(exit_code=1 if failed else 0)
            self._run = None


class Tracking:
    """The job's trackers behind one `log`/`close`. Parameters: `trackers`; `config`
    (called once, when the first step is logged, so it sees resolved hyperparameters);
    `warn(key, message)`, which records a warning event once per key."""

    def __init__(
        self,
        *,
        trackers: list[Tracker],
        config: Callable[[], dict[str, Any]],
        warn: Callable[[str, str], None],
    ) -> None:
        self._pending = list(trackers)
        self._open: list[Tracker] = []
        self._config = config
        self._warn = warn

    def _failed(self, tracker: Tracker, doing: str, exc: BaseException) -> None:
        log.warning("%s tracking failed while %s", tracker.name, doing, exc_info=exc)
        self._warn(
            f"integration-{tracker.name}",
            f"The {tracker.name} integration stopped while {doing}: "
            f"{type(exc).__name__}: {exc}. Training goes on without it.",
        )

    def _start(self, step: int) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        config = self._config()
        for tracker in pending:
            try:
                tracker.open(step=step, config=config)
            except Exception as exc:
                self._failed(tracker, "starting", exc)
            else:
                self._open.append(tracker)

    def log(self, step: int, data: dict[str, Any]) -> None:
        self._start(step)
        values = scalars(data)
        for tracker in list(self._open):
            try:
                tracker.log(step, values)
            except Exception as exc:
                self._open.remove(tracker)
                self._failed(tracker, f"logging step {step}", exc)
                self._close(tracker, failed=True)

    def close(self, *, failed: bool) -> None:
        self._pending = []
        for tracker in self._open:
            self._close(tracker, failed=failed)
        self._open = []

    def _close(self, tracker: Tracker, *, failed: bool) -> None:
        try:
            tracker.close(failed=failed)
        except Exception:  # the job's outcome is settled; a run left open is only logged
            log.warning("closing %s tracking failed", tracker.name, exc_info=True)


def trackers_for(
    integrations: list[dict[str, Any]] | None,
    *,
    job_id: str,
    base_model: str,
    folder: Path,
    tensorboard: bool,
) -> list[Tracker]:
    """TensorBoard (unless turned off) under `folder/tensorboard`; W&B where the job asks."""
    trackers: list[Tracker] = []
    if tensorboard:
        trackers.append(TensorBoardTracker(folder / "tensorboard"))
    for integration in integrations or []:
        if integration.get("type") == "wandb":
            trackers.append(
                WandbTracker(
                    integration["wandb"], job_id=job_id, base_model=base_model, folder=folder
                )
            )
    return trackers
