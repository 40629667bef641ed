"""Group-relative advantages: each completion's reward against the others of its prompt.

GRPO (DeepSeekMath, arXiv:2402.03300 §4.1.2) scores a completion by its reward minus the mean
of its group, divided by the group's standard deviation. Dr. GRPO (arXiv:2503.20783) drops the
division; PPO-Lite divides by the batch's deviation instead. The rule and its constants follow
TRL 1.16's `GRPOTrainer` (`scale_rewards`, unbiased std, `+ 1e-4`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

RewardScale = Literal["group", "batch", "none"]

__all__ = ["RewardScale", "group_advantages", "zero_std_groups"]


def _unbiased_std(x: Tensor, dim: int | None = None) -> Tensor:
    """Bessel-corrected std, as TRL's `nanstd`; zero where fewer than two values are left."""
    count = x.numel() if dim is None else x.shape[dim]
    if count < 2:
        return torch.zeros_like(x.sum(dim=dim, keepdim=dim is not None))
    if dim is None:
        return x.std(correction=1)  # ()
    return x.std(dim=dim, keepdim=True, correction=1)  # (N, 1)


def _grouped(rewards: Tensor, group_size: int) -> Tensor:
    assert rewards.dim() == 1, f"rewards must be (B*G,), got {tuple(rewards.shape)}"
    assert group_size >= 1 and rewards.numel() % group_size == 0, (
        f"{rewards.numel()} rewards do not split into groups of {group_size}"
    )
    return rewards.float().view(-1, group_size)  # (N, G)


def _scale_by_group(centred: Tensor, grouped: Tensor, eps: float) -> Tensor:
    return centred / (_unbiased_std(grouped, dim=1) + eps)  # (N, G)


def _scale_by_batch(centred: Tensor, grouped: Tensor, eps: float) -> Tensor:
    return centred / (_unbiased_std(grouped) + eps)  # (N, G)


def _no_scale(centred: Tensor, grouped: Tensor, eps: float) -> Tensor:
    return centred  # (N, G)


# scale_rewards -> how the centred rewards are divided (TRL `scale_rewards`)
_SCALES: dict[str, Callable[[Tensor, Tensor, float], Tensor]] = {
    "group": _scale_by_group,
    "batch": _scale_by_batch,
    "none": _no_scale,
}


def zero_std_groups(rewards: Tensor, group_size: int) -> Tensor:
    """Which groups have all-equal rewards, as `torch.isclose(std, 0)` in TRL; such groups carry
    no gradient signal and are what DAPO's dynamic sampling (arXiv:2503.14476 §3.2) resamples."""
    group_std = _unbiased_std(_grouped(rewards, group_size), dim=1)  # (N, 1)
    return torch.isclose(group_std, torch.zeros_like(group_std)).squeeze(1)  # (N,)


def group_advantages(
    rewards: Tensor,
    group_size: int,
    *,
    scale: RewardScale = "group",
    eps: float = 1e-4,
) -> tuple[Tensor, dict[str, float]]:
    """Advantages `(r - mean_group) / (std + eps)` for rewards laid out group after group.

    Returns the advantages `(B*G,)` and stats: `reward_mean`, `reward_std`, `advantage_mean`
    and `frac_reward_zero_std` (the fraction of groups whose rewards are all equal).
    """
    if scale not in _SCALES:
        raise ValueError(f"scale must be one of {sorted(_SCALES)}, got {scale!r}")
    grouped = _grouped(rewards, group_size)  # (N, G)
    centred = grouped - grouped.mean(dim=1, keepdim=True)  # (N, G)
    advantages = _SCALES[scale](centred, grouped, eps).reshape(-1)  # (B*G,)
    stats = {
        "reward_mean": grouped.mean().item(),
        "reward_std": _unbiased_std(grouped).item(),
        "advantage_mean": advantages.mean().item(),
        "frac_reward_zero_std": zero_std_groups(rewards, group_size).float().mean().item(),
    }
    return advantages, stats
