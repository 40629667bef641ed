"""The tracking module on its own: metric flattening, and TensorBoard files that a
resumed job (a second worker redoing steps after its checkpoint) leaves with each step
once, read back with TensorBoard's own reader."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from openrft.training._tracking import TensorBoardTracker, Tracking, scalars


def test_scalars_flattens_nested_metrics_and_drops_the_step_axis() -> None:
    data = {
        "step": 3,
        "total_steps": 9,
        "train_reward_mean": 0.5,
        "grader_errors": 0,
        "note": "text is not a scalar",
        "scores": {
            "graders": [{"name": "exact", "type": "string_check", "train_reward_mean": 0.25}],
            "train_reward_mean": 0.5,
        },
        "timing": {"step": {"sampling": 1.5}},
    }
    assert scalars(data) == {
        "train_reward_mean": 0.5,
        "grader_errors": 0.0,
        "scores/graders/exact/train_reward_mean": 0.25,
        "scores/train_reward_mean": 0.5,
        "timing/step/sampling": 1.5,
    }


def _worker(folder: Path, steps: range, scale: float, warnings: list[str]) -> None:
    tracking = Tracking(
        trackers=[TensorBoardTracker(folder)],
        config=lambda: {},
        warn=lambda key, message: warnings.append(message),
    )
    for step in steps:
        tracking.log(step, {"step": step, "train_loss": step * scale})
    tracking.close(failed=False)


def test_a_resumed_job_replaces_the_steps_it_redoes(tmp_path: Path) -> None:
    warnings: list[str] = []
    _worker(tmp_path, range(1, 6), 1.0, warnings)  # crashed after step 5, checkpoint at 3
    _worker(tmp_path, range(4, 8), 10.0, warnings)  # the next worker redoes 4 and 5
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    points = [(p.step, p.value) for p in acc.Scalars("train_loss")]
    assert points == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0), (5, 50.0), (6, 60.0), (7, 70.0)]
    assert warnings == []
