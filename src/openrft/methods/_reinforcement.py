"""Reinforcement (GRPO) hyperparameters: OpenAI's, and the knobs an RL engineer expects.

OpenAI's `compute_multiplier` scales the group size (8 samples a prompt at 1.0) and
`reasoning_effort` sets the completion-length budget, unless `group_size` or
`max_completion_tokens` are given outright.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from openrft.methods._common import Auto, Strict

__all__ = ["ReinforcementHyperparameters", "resolve_reinforcement"]

PositiveInt = Annotated[int, Field(ge=1)]
REASONING_BUDGET = {"low": 256, "default": 1024, "medium": 1024, "high": 4096}


class ReinforcementHyperparameters(Strict):
    batch_size: Auto | Annotated[int, Field(ge=1, le=256)] = "auto"
    learning_rate_multiplier: Auto | Annotated[float, Field(gt=0, le=100)] = "auto"
    n_epochs: Auto | Annotated[int, Field(ge=1, le=50)] = "auto"
    eval_interval: Auto | PositiveInt = "auto"
    eval_samples: Auto | PositiveInt = "auto"
    compute_multiplier: Auto | Annotated[float, Field(gt=1e-5, le=10)] = "auto"
    reasoning_effort: Literal["default", "low", "medium", "high"] = "default"
    # openrft's, beside OpenAI's:
    group_size: Auto | Annotated[int, Field(ge=2, le=256)] = "auto"
    beta: Annotated[float, Field(ge=0)] = 0.0
    epsilon: Annotated[float, Field(gt=0, lt=1)] = 0.2
    epsilon_high: Annotated[float, Field(gt=0, lt=10)] | None = None
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo"] = "dapo"
    scale_rewards: Literal["group", "batch", "none"] = "group"
    temperature: Annotated[float, Field(gt=0, le=2)] = 1.0
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    max_completion_tokens: Auto | PositiveInt = "auto"
    max_prompt_length: Annotated[int, Field(ge=1)] = 1024
    mask_truncated_completions: bool = False
    dynamic_sampling: bool = False
    early_stopping: bool = True
    early_stopping_patience: PositiveInt = 3
    checkpoint_interval: Auto | PositiveInt = "auto"
    grader_error_threshold: Annotated[float, Field(gt=0, le=1)] = 0.5
    fine_tuning_type: Literal["auto", "full", "lora"] = "auto"
    lora_rank: Annotated[int, Field(ge=1, le=512)] = 32
    lora_alpha: PositiveInt = 64
    rollouts_per_step: Annotated[int, Field(ge=0, le=64)] = 4
    # Data-parallel ranks (Decision 13): each samples, grades and differentiates its share
    # of every step's prompts; gradients are summed, so the weights equal one worker's.
    num_workers: Annotated[int, Field(ge=1, le=64)] = 1
    # Stop after this many steps even if the epochs are not done (TRL's max_steps).
    max_steps: PositiveInt | None = None

    @field_validator("num_workers")
    @classmethod
    def _splits_the_batch(cls, value: int, info: ValidationInfo) -> int:
        # Declared after batch_size, so a valid batch_size is in `info.data` already.
        batch = info.data.get("batch_size")
        if isinstance(batch, int) and batch % value:
            raise ValueError(
                f"batch_size {batch} does not split evenly across {value} workers; "
                "use a batch_size that num_workers divides"
            )
        return value


def resolve_reinforcement(
    hp: ReinforcementHyperparameters, *, n_examples: int
) -> ReinforcementHyperparameters:
    """Replace every "auto" with a number (Bedrock's rules where it states them)."""
    batch = hp.batch_size
    if batch == "auto":
        # The largest multiple of num_workers up to min(8, n), so every rank gets a share.
        batch = max(hp.num_workers, min(8, n_examples) // hp.num_workers * hp.num_workers)
    epochs = hp.n_epochs if hp.n_epochs != "auto" else 1
    steps = epochs * math.ceil(n_examples / batch)
    compute = 1.0 if hp.compute_multiplier == "auto" else hp.compute_multiplier
    group = hp.group_size if hp.group_size != "auto" else max(2, min(64, round(8 * compute)))
    max_tokens = hp.max_completion_tokens
    if max_tokens == "auto":
        max_tokens = REASONING_BUDGET[hp.reasoning_effort]
    lr = hp.learning_rate_multiplier
    # Bedrock: evalInterval is auto-set to min(10, data_size / batch_size).
    eval_interval = hp.eval_interval if hp.eval_interval != "auto" else max(1, min(10, steps))
    return hp.model_copy(
        update={
            "batch_size": batch,
            "n_epochs": epochs,
            "learning_rate_multiplier": 1.0 if lr == "auto" else lr,
            "compute_multiplier": compute,
            "group_size": group,
            "max_completion_tokens": max_tokens,
            "eval_interval": eval_interval,
            "eval_samples": 1 if hp.eval_samples == "auto" else hp.eval_samples,
            "checkpoint_interval": hp.checkpoint_interval
            if hp.checkpoint_interval != "auto"
            else eval_interval,
        }
    )
