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
    masked_mean,
    merge_shard_metrics,
    with_skipped_rows,
)
from openrft.training._model import device
from openrft.training._packing import NotPackable, can_pack

__all__ = ["RolloutBatch", "apply_gradients", "shard_backward"]


class RolloutBatch:
    """One step's training batch: B prompts, each with its group of completions (group-major).

    Each prompt runs once per step, not once per completion. The batch runs as one
    padding-free row (`_packing`: attention per prompt and per completion) when the model's
    attention can be taken over, else with the prompt's KV cache shared by its completions
    (completions padded to the longest). Both give the full forward's numbers
    (tests/training/test_shared_prefix.py)."""

    # Row tokens per forward/backward pass. At the compute scale of benchmarks/README.md
    # (~7,500 tokens a step) two passes hold half the activations for ~the same speed:
    # the matmuls stay thousands of rows tall.
    TOKENS_PER_PASS = 4096

    def __init__(
        self,
        prompts: list[list[int]],
        completions: list[list[int]],
        *,
        pad_id: int,
        temperature: float,
        cache_kw: str,
        entropies: list[list[float] | None] | None = None,
    ) -> None:
        self.prompts, self.completions = prompts, completions
        self.pad, self.temperature, self.cache_kw = pad_id, temperature, cache_kw
        self.group = len(completions) // len(prompts)
        c = max(len(x) for x in self.completions)
        ids = torch.tensor([x + [self.pad] * (c - len(x)) for x in completions])  # (N, C)
        mask = torch.tensor([[1] * len(x) + [0] * (c - len(x)) for x in completions])  # (N, C)
        self.completion_ids, self.completion_mask = ids.to(device()), mask.to(device())
        # The sampler's entropies (N, C), when every completion carries them.
        self.entropies: torch.Tensor | None = None
        if entropies is not None and all(e is not None for e in entropies):
            rows = [e + [0.0] * (c - len(e)) for e in entropies]  # type: ignore[operator]
            self.entropies = torch.tensor(rows, dtype=torch.float32).to(device())

    def signal_groups(self, advantages: torch.Tensor) -> list[int]:
        """The groups whose advantages `(N,)` are not all zero."""
        flat = advantages.view(len(self.prompts), self.group).ne(0).any(dim=1)  # (B,)
        return flat.nonzero().squeeze(1).tolist()

    def rows(self, groups: list[int]) -> torch.Tensor:
        """The completion rows `(n,)` of these groups."""
        g = self.group
        return torch.tensor([i * g + j for i in groups for j in range(g)], dtype=torch.long)

    def passes(self, groups: list[int]) -> list[list[int]]:
        """`groups` in consecutive runs of at most `TOKENS_PER_PASS` row tokens (a longer
        group runs alone): each is one forward and backward pass, so activation memory is
        bounded by the budget rather than by the step's size."""
        out: list[list[int]] = []
        used, g = self.TOKENS_PER_PASS, self.group
        for i in groups:
            size = len(self.prompts[i]) + sum(
                len(c) - 1 for c in self.completions[i * g : (i + 1) * g]
            )
            if used + size > self.TOKENS_PER_PASS:
                out.append([])
                used = 0
            out[-1].append(i)
            used += size
        return out

    def logprobs(
        self, model: Any, *, groups: list[int] | None = None, with_entropy: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Log-probabilities (and entropies) `(n, C')` of the completions of `groups`
        (default: all), C' their longest."""
        prompts, completions = self.prompts, self.completions
        if groups is not None and len(groups) < len(prompts):
            g = self.group
            prompts = [prompts[i] for i in groups]
            completions = [c for i in groups for c in completions[i * g : (i + 1) * g]]
        args = (model, prompts, completions)
        kw = {"pad_id": self.pad, "temperature": self.temperature, "with_entropy": with_entropy}
        if can_pack(model):
            try:
                return packed_group_logprobs(*args, **kw)
            except NotPackable:
                pass  # windowed or soft-capped attention: the KV-cache layout applies it
        return group_completion_logprobs(*args, cache_kw=self.cache_kw, **kw)


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
    process would report them, and its totals.

    When the batch carries the sampler's entropies and there is no KL term, a group whose
    advantages are all zero (every reward equal) is left out of the forward and backward
    passes: each of its tokens has a zero loss and a zero gradient, so the step is the
    same; its tokens still count in the normalisers and the metrics."""
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
        skipping = batch.entropies is not None and config.beta == 0.0 and ref_logps is None
        groups = batch.signal_groups(advantages) if skipping else list(range(len(batch.prompts)))
        shares = []  # (metrics, active tokens) of each pass
        for chunk in batch.passes(groups):
            rows = batch.rows(chunk)  # (n,)
            logps, entropy = batch.logprobs(
                model, groups=chunk, with_entropy=batch.entropies is None
            )  # (n, C')
            width = logps.shape[1]
            part_mask = mask.index_select(0, rows.to(mask.device))[:, :width]  # (n, C')
            loss, share = grpo_loss(
                logps,
                advantages.index_select(0, rows).to(logps.device),
                part_mask,
                config,
                ref_logps=None
                if ref_logps is None
                else ref_logps.index_select(0, rows.to(ref_logps.device))[:, :width],
                entropy=entropy,
                step_totals=totals,
            )
            loss.backward()
            shares.append((share, int(part_mask.sum())))
        metrics = merge_shard_metrics(shares) if shares else {}
        if skipping:
            trained = sum(tokens for _, tokens in shares)
            metrics = with_skipped_rows(metrics, trained=trained, tokens=local[1])
            metrics["entropy"] = float(masked_mean(batch.entropies, mask))
    if workers.size > 1:
        metrics = merge_shard_metrics(workers.gather([(metrics, local[1])]))
    return metrics, totals


def apply_gradients(
    params: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer, workers: Workers
) -> float:
    """Sum the ranks' gradients, clip by their global norm, step; returns the norm. Every
    rank then holds the same gradients, hence the same weights after the step."""
    for p in params:
        if p.grad is None:  # nothing trained (every group skipped): AdamW still steps, on zeros
            p.grad = torch.zeros_like(p)
    workers.sum_gradients(params)
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
    optimizer.step()
    return grad_norm
