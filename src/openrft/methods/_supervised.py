"""Supervised fine-tuning hyperparameters: OpenAI's three plus openrft's own."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field

from openrft.methods._common import Auto, Strict

__all__ = ["SupervisedHyperparameters", "resolve_supervised"]

PositiveInt = Annotated[int, Field(ge=1)]


class SupervisedHyperparameters(Strict):
    batch_size: Auto | Annotated[int, Field(ge=1, le=256)] = "auto"
    learning_rate_multiplier: Auto | Annotated[float, Field(gt=0, le=100)] = "auto"
    n_epochs: Auto | Annotated[int, Field(ge=1, le=50)] = "auto"
    # openrft's, beside OpenAI's:
    checkpoint_interval: Auto | PositiveInt = "auto"
    eval_interval: Auto | PositiveInt = "auto"
    fine_tuning_type: Literal["auto", "full", "lora"] = "auto"
    lora_rank: Annotated[int, Field(ge=1, le=512)] = 32
    lora_alpha: PositiveInt = 64
    max_seq_length: Annotated[int, Field(ge=8)] = 2048


def resolve_supervised(
    hp: SupervisedHyperparameters, *, n_examples: int
) -> SupervisedHyperparameters:
    """Replace every "auto" with a number, from the size of the data (see the README)."""
    batch = hp.batch_size if hp.batch_size != "auto" else min(32, max(1, n_examples // 4))
    if hp.n_epochs != "auto":
        epochs = hp.n_epochs
    else:
        epochs = 3 if n_examples >= 100 else min(25, math.ceil(300 / n_examples))
    steps = epochs * math.ceil(n_examples / batch)
    lr = hp.learning_rate_multiplier
    return hp.model_copy(
        update={
            "batch_size": batch,
            "n_epochs": epochs,
            "learning_rate_multiplier": 1.0 if lr == "auto" else lr,
            "eval_interval": hp.eval_interval
            if hp.eval_interval != "auto"
            else max(1, steps // 10),
            "checkpoint_interval": hp.checkpoint_interval
            if hp.checkpoint_interval != "auto"
            else max(1, steps // 4),
        }
    )
