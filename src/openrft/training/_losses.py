"""The GRPO policy loss: clipped importance-weighted advantages, a k3 KL penalty, and a table of
ways to average the per-token loss into one number.

Per token (DeepSeekMath, arXiv:2402.03300 eq. 3): `-min(ρ·A, clip(ρ, 1-ε_low, 1+ε_high)·A) + β·KL`,
with DAPO's decoupled clip range (arXiv:2503.14476 §3.1). The loss types differ only in the
denominator and follow TRL 1.16's `GRPOTrainer._compute_loss` exactly, accumulation scaling included.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor

LossType = Literal["grpo", "bnpo", "dr_grpo", "dapo"]
ImportanceSamplingLevel = Literal["token", "sequence"]

__all__ = [
    "ImportanceSamplingLevel",
    "LossType",
    "PolicyLossConfig",
    "StepTotals",
    "grpo_loss",
    "k3_kl",
    "mask_truncated",
    "masked_mean",
    "merge_shard_metrics",
    "with_skipped_rows",
]


class StepTotals(NamedTuple):
    """Counts over the whole optimizer step, when a data-parallel rank computes its shard's
    share of the loss: the shares then sum over the ranks to the one-process loss."""

    sequences: int
    tokens: int  # active completion tokens


class _Normalizers(NamedTuple):
    max_completion_length: int | None
    num_items_in_batch: Tensor  # () active tokens of the whole optimizer step
    accumulation_steps: int
    step: StepTotals | None  # the whole step's counts when this is a data-parallel shard


def _grpo(x: Tensor, mask: Tensor, n: _Normalizers) -> Tensor:
    """Mean over each sequence's own tokens, then over sequences (the GRPO paper, eq. 3)."""
    per_seq = (x * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)  # (B,)
    if n.step is not None:
        return per_seq.sum() / n.step.sequences  # ()
    return per_seq.mean() / n.accumulation_steps  # ()


def _bnpo(x: Tensor, mask: Tensor, n: _Normalizers) -> Tensor:
    """Token mean over the micro-batch (TRL's `bnpo`); over the whole step for a shard."""
    if n.step is not None:
        return (x * mask).sum() / max(n.step.tokens, 1)  # ()
    return (x * mask).sum() / mask.sum().clamp(min=1.0) / n.accumulation_steps  # ()


def _dr_grpo(x: Tensor, mask: Tensor, n: _Normalizers) -> Tensor:
    """Token sum over a constant `B * max_completion_length` (Dr. GRPO, arXiv:2503.20783 §3.1)."""
    assert n.max_completion_length is not None, "dr_grpo needs max_completion_length"
    sequences = x.size(0) if n.step is None else n.step.sequences
    return (x * mask).sum() / (sequences * n.max_completion_length) / n.accumulation_steps  # ()


def _dapo(x: Tensor, mask: Tensor, n: _Normalizers) -> Tensor:
    """Token sum over the active tokens of the whole step (DAPO's token-level loss, §3.3)."""
    return (x * mask).sum() / n.num_items_in_batch.clamp(min=1.0)  # ()


# loss_type -> aggregation of a (B, T) or (B, 1) per-token loss into this micro-batch's share
_AGGREGATIONS: dict[str, Callable[[Tensor, Tensor, _Normalizers], Tensor]] = {
    "grpo": _grpo,
    "bnpo": _bnpo,
    "dr_grpo": _dr_grpo,
    "dapo": _dapo,
}


def _token_log_weights(log_ratio: Tensor, mask: Tensor) -> Tensor:
    return log_ratio  # (B, T)


def _sequence_log_weights(log_ratio: Tensor, mask: Tensor) -> Tensor:
    """GSPO's length-normalised sequence ratio (arXiv:2507.18071 eq. 7), as TRL's "sequence"."""
    return ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)  # (B, 1)


# importance_sampling_level -> log importance weights from per-token log-ratios
_IMPORTANCE: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "token": _token_log_weights,
    "sequence": _sequence_log_weights,
}


@dataclass(frozen=True, kw_only=True)
class PolicyLossConfig:
    """Settings of the GRPO loss, named as TRL's `GRPOConfig` names them.

    Parameters:
        loss_type: how per-token losses are averaged: `grpo`, `bnpo`, `dr_grpo` or `dapo`.
        epsilon: lower clip ε_low of the ratio.
        epsilon_high: upper clip ε_high; `None` means `epsilon` (DAPO recommends 0.28).
        beta: weight of the k3 KL penalty against the reference policy; 0 turns it off.
        delta: optional upper bound on the unclipped ratio (two-sided clipping, INTELLECT-2).
        importance_sampling_level: `token` ratios, or one `sequence` ratio (GSPO).
        max_completion_length: the completion-length budget; `dr_grpo`'s constant denominator.
        use_bias_correction_kl: weight the per-token KL by the importance ratio, which makes its
            gradient the unbiased reverse-KL gradient off-policy (DeepSeek-V3.2, arXiv:2512.02556);
            TRL's default.
    """

    loss_type: LossType = "dapo"
    epsilon: float = 0.2
    epsilon_high: float | None = None
    beta: float = 0.0
    delta: float | None = None
    importance_sampling_level: ImportanceSamplingLevel = "token"
    max_completion_length: int | None = None
    use_bias_correction_kl: bool = True

    def __post_init__(self) -> None:
        if self.loss_type not in _AGGREGATIONS:
            raise ValueError(
                f"loss_type must be one of {sorted(_AGGREGATIONS)}, got {self.loss_type!r}"
            )
        if self.importance_sampling_level not in _IMPORTANCE:
            raise ValueError(
                f"importance_sampling_level must be 'token' or 'sequence', got {self.importance_sampling_level!r}"
            )
        if not 0.0 <= self.epsilon < 1.0 or self.clip_high < 0.0:
            raise ValueError("epsilon must lie in [0, 1) and epsilon_high must be >= 0")
        if self.beta < 0.0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if self.delta is not None and self.delta <= 1.0:
            raise ValueError(f"delta must be > 1 (an upper bound on the ratio), got {self.delta}")
        if self.loss_type == "dr_grpo" and (self.max_completion_length or 0) < 1:
            raise ValueError("loss_type 'dr_grpo' needs max_completion_length >= 1")

    @property
    def clip_high(self) -> float:
        """ε_high, falling back to ε as TRL does."""
        return self.epsilon if self.epsilon_high is None else self.epsilon_high


def k3_kl(logps: Tensor, ref_logps: Tensor) -> Tensor:
    """Schulman's unbiased, non-negative k3 estimator of KL(π_θ ‖ π_ref) per token (GRPO eq. 4)."""
    delta = ref_logps - logps  # (B, T)
    return torch.exp(delta) - delta - 1  # (B, T)


def mask_truncated(
    completion_ids: Tensor, completion_mask: Tensor, stop_token_ids: list[int]
) -> Tensor:
    """Zero the mask of completions whose last token is not a stop token: truncated answers are
    left out of the loss (DAPO's overlong filtering, arXiv:2503.14476 §3.4; TRL's
    `mask_truncated_completions`). Completions are right-padded; masks are `(B, T)`."""
    lengths = completion_mask.sum(-1)  # (B,)
    last = (lengths - 1).clamp(min=0).unsqueeze(-1)  # (B, 1)
    last_token = completion_ids.gather(-1, last).squeeze(-1)  # (B,)
    stops = torch.tensor(stop_token_ids, device=completion_ids.device)  # (S,)
    finished = torch.isin(last_token, stops) | (lengths == 0)  # (B,)
    return completion_mask * finished.unsqueeze(-1).to(completion_mask.dtype)  # (B, T)


def _clipped_surrogate(
    ratio: Tensor, advantages: Tensor, config: PolicyLossConfig
) -> tuple[Tensor, Tensor]:
    """PPO's pessimistic surrogate per token, and the ratio it used (after `delta`)."""
    clipped = ratio.clamp(1 - config.epsilon, 1 + config.clip_high)  # (B, T)
    if config.delta is not None:
        ratio = ratio.clamp(max=config.delta)  # (B, T)
    return -torch.min(ratio * advantages, clipped * advantages), ratio  # (B, T), (B, T)


def _kl_term(
    logps: Tensor, ref_logps: Tensor | None, ratio: Tensor, config: PolicyLossConfig
) -> Tensor:
    """Per-token k3 KL to the reference, weighted by the ratio when `use_bias_correction_kl`."""
    if ref_logps is None:
        raise ValueError("beta > 0 needs ref_logps")
    per_token_kl = k3_kl(logps, ref_logps)  # (B, T)
    return per_token_kl * ratio if config.use_bias_correction_kl else per_token_kl  # (B, T)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Token mean over the mask; a `(B, 1)` sequence-level value counts once per sequence."""
    if x.shape[1] == 1:
        return x.mean()  # ()
    return (x * mask).sum() / mask.sum().clamp(min=1.0)  # ()


def _sequence_means(x: Tensor, mask: Tensor) -> Tensor:
    """Per-sequence mean over the mask, NaN for an empty sequence (left out by the callers)."""
    if x.shape[1] == 1:
        return x.squeeze(1)  # (B,)
    return (x * mask).sum(-1) / mask.sum(-1)  # (B,)


def _nanmin(x: Tensor) -> Tensor:
    """Minimum over the non-NaN values, NaN if there are none; no data-dependent shapes."""
    smallest = x.nan_to_num(nan=float("inf")).min()  # ()
    return smallest.where(~x.isnan().all(), x.new_tensor(float("nan")))  # ()


def _clip_metrics(
    ratio: Tensor, advantages: Tensor, mask: Tensor, config: PolicyLossConfig
) -> dict[str, Tensor]:
    """Fractions of tokens whose gradient the clip removed, with TRL's `clip_ratio/*` names."""
    low = ((ratio < 1 - config.epsilon) & (advantages < 0)).float()  # (B, T)
    high = ((ratio > 1 + config.clip_high) & (advantages > 0)).float()  # (B, T)
    low_seq, high_seq = _sequence_means(low, mask), _sequence_means(high, mask)  # (B,), (B,)
    return {
        "clip_ratio/low_mean": masked_mean(low, mask),
        "clip_ratio/low_min": _nanmin(low_seq),
        "clip_ratio/high_mean": masked_mean(high, mask),
        "clip_ratio/high_max": -_nanmin(-high_seq),
        "clip_ratio/region_mean": masked_mean(torch.maximum(low, high), mask),
    }


def grpo_loss(
    logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    config: PolicyLossConfig,
    *,
    old_logps: Tensor | None = None,
    ref_logps: Tensor | None = None,
    entropy: Tensor | None = None,
    num_items_in_batch: Tensor | int | None = None,
    accumulation_steps: int = 1,
    step_totals: StepTotals | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """This micro-batch's share of the step's GRPO loss, and its metrics.

    `logps`, `old_logps`, `ref_logps`, `entropy`, `mask`: `(B, T)`; `advantages`: `(B,)` or `(B, T)`.
    `old_logps=None` means the rollout policy is the current one (ratio 1, as TRL with μ=1).
    `num_items_in_batch` is the count of active tokens of the whole optimizer step (for `dapo`);
    `loss` and `pg_loss` sum over the `accumulation_steps` micro-batches to the step's value.
    `step_totals` makes this a data-parallel shard's share instead: every loss type then
    divides by the whole step's counts, and the shares sum over the ranks to the step's value.
    """
    mask = mask.to(logps.dtype)  # (B, T)
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)  # (B, 1)
    if old_logps is None:
        old_logps = logps.detach()  # (B, T)
    if step_totals is not None:
        if accumulation_steps != 1 or num_items_in_batch is not None:
            raise ValueError("step_totals replaces num_items_in_batch and accumulation_steps")
        num_items_in_batch = step_totals.tokens
    if num_items_in_batch is None:
        if accumulation_steps != 1:
            raise ValueError(
                "with accumulation_steps > 1, pass num_items_in_batch of the whole step"
            )
        num_items_in_batch = mask.sum()  # ()
    norm = _Normalizers(
        config.max_completion_length,
        torch.as_tensor(num_items_in_batch),
        accumulation_steps,
        step_totals,
    )
    aggregate = _AGGREGATIONS[config.loss_type]
    weigh = _IMPORTANCE[config.importance_sampling_level]

    ratio = torch.exp(weigh(logps - old_logps, mask))  # (B, T), or (B, 1) per sequence
    surrogate, bounded = _clipped_surrogate(ratio, advantages, config)  # (B, T) or (B, 1) each
    metrics = _clip_metrics(bounded, advantages, mask, config)
    per_token_loss = surrogate  # (B, T) or (B, 1)
    if config.beta != 0.0 or ref_logps is not None:
        per_token_kl = _kl_term(logps, ref_logps, ratio, config)  # (B, T)
        per_token_loss = per_token_loss + config.beta * per_token_kl  # (B, T)
        metrics["kl"] = masked_mean(per_token_kl, mask)
    loss = aggregate(per_token_loss, mask, norm)  # ()
    metrics["loss"] = loss
    metrics["pg_loss"] = aggregate(surrogate, mask, norm)
    if entropy is not None:
        metrics["entropy"] = masked_mean(entropy, mask)
    names = list(metrics)
    values = torch.stack([metrics[k].detach().float() for k in names]).tolist()  # one device sync
    return loss, dict(zip(names, values, strict=True))


def merge_shard_metrics(shards: list[tuple[dict[str, float], int]]) -> dict[str, float]:
    """One step's metrics from its data-parallel shards' `(metrics, active tokens)`: the loss
    shares add up, extremes take the extreme, and token means are weighted by tokens, as
    `grpo_loss` on the whole step would report them. Shards without sequences are `({}, 0)`."""
    shards = [(m, t) for m, t in shards if m]
    tokens = sum(t for _, t in shards)
    out: dict[str, float] = {}
    for name in shards[0][0]:
        values = [m[name] for m, _ in shards]
        if name in ("loss", "pg_loss"):
            out[name] = sum(values)
        elif name.endswith(("_min", "_max")):
            kept = [v for v in values if not math.isnan(v)]
            pick = min if name.endswith("_min") else max
            out[name] = pick(kept) if kept else float("nan")
        else:
            out[name] = sum(m[name] * t for m, t in shards) / max(tokens, 1)
    return out


# Metrics that are token means, and the extremes over sequences, of `_clip_metrics`.
_CLIP_MEANS = ("clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean")


def with_skipped_rows(metrics: dict[str, float], *, trained: int, tokens: int) -> dict[str, float]:
    """`grpo_loss`'s metrics over `trained` of the shard's `tokens` active tokens, as if the
    skipped rows (zero advantage, ratio 1: no loss and never clipped) had been computed."""
    out = dict(metrics) or {"loss": 0.0, "pg_loss": 0.0}
    for name in _CLIP_MEANS:
        out[name] = out.get(name, 0.0) * trained / max(tokens, 1)
    low, high = out.get("clip_ratio/low_min", math.nan), out.get("clip_ratio/high_max", math.nan)
    skipped = tokens > trained
    out["clip_ratio/low_min"] = 0.0 if skipped or math.isnan(low) else low
    out["clip_ratio/high_max"] = 0.0 if math.isnan(high) else high
    return out
