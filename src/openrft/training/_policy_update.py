"""One GRPO optimizer step on fixed rollouts: the batch's log-probabilities, this rank's
share of the loss, and the gradient step, summed over the data-parallel ranks.

`ReinforcementMethod.policy_update` runs these; tests/training/test_data_parallel.py runs
them on two gloo ranks against one process (Decision 13).
"""

from __future__ import annotations

from typing import Any

import torch

from openrft.training._data_parallel import Workers
from openrft.training._logprobs import group_completion_logprobs, packed_group_logprobs
from openrft.training._losses import (
    PolicyLossConfig,
    StepTotals,
    grpo_loss,
    mask_truncated,
    merge_shard_metrics,
)
from openrft.training._model import device

__all__ = ["RolloutBatch", "apply_gradients", "shard_backward"]


class RolloutBatch:
    """One step's training batch: B prompts, each with its group of completions (group-major).

    Each prompt runs once per step, not once per completion, in one of two layouts that
    give the same numbers (tests/training/test_shared_prefix.py): packed (each group's
    prompt and completions back to back, groups packed into rows under a block mask: no
    padding, but attention over whole rows) while every group is short, and the prompt's KV
    cache shared by its completions (attention only where needed, completions padded to
    the longest) past that."""

    # Packed rows hold up to this many tokens. At the demo's shapes (groups of ~30
    # tokens, completions of 1-6) packing all groups in one row computes a third of the
    # padded tokens; at 128-token completions a single group passes the budget, and the
    # block mask's wasted attention would outweigh the padding it saves.
    PACKED_ROW_TOKENS = 512

    def __init__(
        self,
        prompts: list[list[int]],
        completions: list[list[int]],
        *,
        pad_id: int,
        temperature: float,
        cache_kw: str,
    ) -> None:
        self.prompts, self.completions = prompts, completions
        self.pad, self.temperature, self.cache_kw = pad_id, temperature, cache_kw
        c = max(len(x) for x in self.completions)
        ids = torch.full((len(completions), c), self.pad, dtype=torch.long)  # (N, C)
        mask = torch.zeros((len(completions), c), dtype=torch.long)  # (N, C)
        for i, tokens in enumerate(self.completions):
            ids[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            mask[i, : len(tokens)] = 1
        self.completion_ids, self.completion_mask = ids.to(device()), mask.to(device())
        g = len(completions) // len(prompts)
        self.group_tokens = max(
            len(p) + sum(len(x) for x in self.completions[i * g : (i + 1) * g])
            for i, p in enumerate(self.prompts)
        )

    def logprobs(
        self, model: Any, *, with_entropy: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        temperature = self.temperature
        if self.group_tokens <= self.PACKED_ROW_TOKENS:
            return packed_group_logprobs(
                model, self.prompts, self.completions, pad_id=self.pad,
                row_tokens=self.PACKED_ROW_TOKENS, temperature=temperature,
                with_entropy=with_entropy,
            )  # fmt: skip
        return group_completion_logprobs(
            model, self.prompts, self.completions, pad_id=self.pad,
            cache_kw=self.cache_kw, temperature=temperature, with_entropy=with_entropy,
        )  # fmt: skip


def shard_backward(
    model: Any,
    batch: RolloutBatch | None,
    advantages: torch.Tensor,
    config: PolicyLossConfig,
    workers: Workers,
    *,
    stop_ids: list[int] | None = None,
    ref_logps: torch.Tensor | None = None,
) -> tuple[dict[str, float], StepTotals]:
    """Backpropagate this rank's share of the step's loss (`batch` None: no share this step).

    Each rank divides by the whole step's counts (`StepTotals`), so the ranks' gradients sum
    to the one-process gradient of the whole batch (Decision 13) for every loss type.
    `stop_ids` masks truncated completions out. Returns the step's loss metrics, as one
    process would report them, and its totals."""
    mask = None
    local = (0, 0)  # (sequences, active tokens) of this rank
    if batch is not None:
        mask = batch.completion_mask  # (N, C)
        if stop_ids is not None:
            mask = mask_truncated(batch.completion_ids, mask, stop_ids)
        local = (len(batch.completions), int(mask.sum()))
    counts = workers.gather([local])
    totals = StepTotals(sum(c[0] for c in counts), sum(c[1] for c in counts))
    metrics: dict[str, float] = {}
    if batch is not None:
        assert mask is not None
        logps, entropy = batch.logprobs(model)  # (N, C), (N, C)
        loss, metrics = grpo_loss(
            logps,
            advantages.to(logps.device),
            mask,
            config,
            ref_logps=ref_logps,
            entropy=entropy,
            step_totals=totals if workers.size > 1 else None,
        )
        loss.backward()
    if workers.size > 1:
        metrics = merge_shard_metrics(workers.gather([(metrics, local[1])]))
    return metrics, totals


def apply_gradients(
    params: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer, workers: Workers
) -> float:
    """Sum the ranks' gradients, clip by their global norm, step; returns the norm. Every
    rank then holds the same gradients, hence the same weights after the step."""
    workers.sum_gradients(params)
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
    optimizer.step()
    return grad_norm
