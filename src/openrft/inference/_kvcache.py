"""A batch's KV cache whose rows can join and leave between decoding steps.

Rows are left-padded to a common length; `mask` (B, T) marks real positions and
`positions` holds each row's next position id, so a row's attention and RoPE are
the same as if it ran alone. That is what lets requests join a running batch
(continuous batching) and lets greedy output match `model.generate`.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedModel

__all__ = ["KVBatch", "cache_keyword"]


def cache_keyword(model: torch.nn.Module) -> str:
    """The forward keyword that takes the cache: `cache` in transformers 5.2x, else `past_key_values`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


class KVBatch:
    """KV cache, attention mask (B, T) and next position ids (B,) of the rows of one batch."""

    def __init__(self, *, cache: DynamicCache, mask: torch.Tensor, positions: torch.Tensor) -> None:
        self.cache = cache
        self.mask = mask
        self.positions = positions

    @property
    def size(self) -> int:
        return int(self.mask.shape[0])

    @classmethod
    def prefill(
        cls, model: PreTrainedModel, prompts: list[list[int]], *, pad_id: int, cache_kw: str
    ) -> tuple[torch.Tensor, KVBatch]:
        """Run the prompts (left-padded together); return last-position logits (R, V) and the batch."""
        device = model.device
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p) :] = 1
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)  # (R, T)
        cache = DynamicCache()
        out = model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=position_ids.to(device),
            use_cache=True,
            logits_to_keep=1,
            **{cache_kw: cache},
        )
        batch = cls(cache=cache, mask=mask.to(device), positions=mask.sum(-1).to(device))
        return out.logits[:, -1, :], batch

    def decode(
        self, model: PreTrainedModel, tokens: torch.Tensor, *, cache_kw: str
    ) -> torch.Tensor:
        """Feed one token per row (B,); return next-token logits (B, V)."""
        self.mask = F.pad(self.mask, (0, 1), value=1)  # (B, T + 1)
        out = model(
            input_ids=tokens.view(-1, 1).to(self.mask.device),
            attention_mask=self.mask,
            position_ids=self.positions.view(-1, 1),
            use_cache=True,
            **{cache_kw: self.cache},
        )
        self.positions = self.positions + 1
        return out.logits[:, -1, :]

    def keep(self, rows: list[int]) -> None:
        """Keep (or repeat) `rows` in this order, then drop padding columns no row needs."""
        if rows == list(range(self.size)):
            return
        index = torch.tensor(rows, dtype=torch.long, device=self.mask.device)
        self.mask = self.mask.index_select(0, index)
        self.positions = self.positions.index_select(0, index)
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, index)
            layer.values = layer.values.index_select(0, index)
        self._trim()

    def extend(self, other: KVBatch) -> None:
        """Append `other`'s rows below these, left-padding the shorter of the two."""
        width = max(self.mask.shape[1], other.mask.shape[1])
        self.mask = torch.cat([_pad_left(self.mask, width), _pad_left(other.mask, width)])
        self.positions = torch.cat([self.positions, other.positions])
        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            mine.keys = torch.cat([_pad_left(mine.keys, width), _pad_left(theirs.keys, width)])
            mine.values = torch.cat(
                [_pad_left(mine.values, width), _pad_left(theirs.values, width)]
            )

    def _trim(self) -> None:
        if self.size == 0:
            return
        used = self.mask.any(dim=0).nonzero()
        start = int(used[0]) if used.numel() else self.mask.shape[1]
        if start == 0:
            return
        self.mask = self.mask[:, start:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[:, :, start:]
            layer.values = layer.values[:, :, start:]


def _pad_left(t: torch.Tensor, width: int) -> torch.Tensor:
    # The sequence axis is dim -1 of a mask (B, T) and dim -2 of keys/values (B, H, T, D).
    seq_dim = -1 if t.dim() == 2 else -2
    missing = width - t.shape[seq_dim]
    if missing == 0:
        return t
    pad = (missing, 0) if seq_dim == -1 else (0, 0, missing, 0)
    return F.pad(t, pad, value=0)
