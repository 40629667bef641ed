"""Which examples a step trains on: a permutation per epoch, seeded by (seed, epoch).

The step number alone says where the data stands, so a resumed job needs no
saved iterator, and two workers agree on every batch.
"""

from __future__ import annotations

import torch

__all__ = ["step_indices"]


def step_indices(*, n: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Indices of step `step` (1-based); the last batch of an epoch may be short."""
    steps_per_epoch = -(-n // batch_size)
    epoch, index = divmod(step - 1, steps_per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
    return order[index * batch_size : (index + 1) * batch_size].tolist()
