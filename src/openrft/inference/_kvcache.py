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
from transformers import PreTrainedModel
from transformers.cache_utils import Cache, DynamicLayer

__all__ = ["KVBatch", "RoomyLayer", "cache_keyword"]


def cache_keyword(model: torch.nn.Module) -> str:
    """The forward keyword that takes the cache: `cache` in transformers 5.2x, else `past_key_values`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


class KVBatch:
    """KV cache, attention mask (B, T) and next position ids (B,) of the rows of one batch."""

    def __init__(self, *, cache: Cache, mask: torch.Tensor, positions: torch.Tensor) -> None:
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
        cache = Cache(layer_class_to_replicate=RoomyLayer)
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
            layer.select_rows(index)
        self._trim()

    def extend(self, other: KVBatch) -> None:
        """Append `other`'s rows below these, left-padding the shorter of the two."""
        width = max(self.mask.shape[1], other.mask.shape[1])
        self.mask = torch.cat([_pad_left(self.mask, width), _pad_left(other.mask, width)])
        self.positions = torch.cat([self.positions, other.positions])
        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            mine.stack_rows(theirs, width)

    def _trim(self) -> None:
        if self.size == 0:
            return
        used = self.mask.any(dim=0).nonzero()
        start = int(used[0]) if used.numel() else self.mask.shape[1]
        if start == 0:
            return
        self.mask = self.mask[:, start:]
        for layer in self.cache.layers:
            layer.drop_front(start)


def _pad_left(mask: torch.Tensor, width: int) -> torch.Tensor:
    """A `(B, T)` mask left-padded with zeros to `(B, width)`."""
    return F.pad(mask, (width - mask.shape[1], 0), value=0)


class RoomyLayer(DynamicLayer):
    """A cache layer whose keys and values are views `(B, H, T, D)` of buffers with room
    for more positions, so a decoding step writes its token in place; transformers'
    `DynamicLayer` concatenates the whole cache instead, a copy of it per token (13% of a
    decoding step at the compute scale of benchmarks/README.md). Rows are selected,
    trimmed and stacked here, keeping the room.

    The room is half the length (at least 8 positions): a long decode copies its cache a
    logarithmic number of times, and a short one (the demo's 8-token prompts) carries
    little unused room through its row selections."""

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.is_initialized, self.device = True, key_states.device
            self._buffers = (key_states[:, :, :0], value_states[:, :, :0])
            self._used = 0
        n = key_states.shape[-2]
        if self._used + n > self._buffers[0].shape[-2]:
            self._resize(_with_room(self._used + n))
        for buffer, new in zip(self._buffers, (key_states, value_states), strict=True):
            buffer[:, :, self._used : self._used + n] = new
        self._used += n
        self._expose()
        return self.keys, self.values

    def select_rows(self, index: torch.Tensor) -> None:
        """Keep (or repeat) the rows `index` (R,), in this order."""
        self._buffers = tuple(b.index_select(0, index) for b in self._buffers)
        self._expose()

    def drop_front(self, start: int) -> None:
        """Drop the first `start` positions (padding no row needs): a view, no copy."""
        self._buffers = tuple(b[:, :, start:] for b in self._buffers)
        self._used -= start
        self._expose()

    def stack_rows(self, other: RoomyLayer, width: int) -> None:
        """Append `other`'s rows below these, both left-padded to `width` positions."""
        rows = self.keys.shape[0] + other.keys.shape[0]
        out = []
        for mine, theirs in ((self.keys, other.keys), (self.values, other.values)):
            buffer = mine.new_zeros((rows, mine.shape[1], _with_room(width), mine.shape[3]))
            buffer[: mine.shape[0], :, width - mine.shape[2] : width] = mine
            buffer[mine.shape[0] :, :, width - theirs.shape[2] : width] = theirs
            out.append(buffer)
        self._buffers, self._used = tuple(out), width
        self._expose()

    def _resize(self, capacity: int) -> None:
        def grown(b: torch.Tensor) -> torch.Tensor:
            new = b.new_zeros((b.shape[0], b.shape[1], capacity, b.shape[3]))
            new[:, :, : self._used] = b[:, :, : self._used]
            return new

        self._buffers = tuple(grown(b) for b in self._buffers)

    def _expose(self) -> None:
        self.keys, self.values = (b[:, :, : self._used] for b in self._buffers)


def _with_room(length: int) -> int:
    return length + max(8, length // 2)
