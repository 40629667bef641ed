"""Choosing the next token of every row of a batch.

Each sampled row draws from its own `torch.Generator`, seeded from the request's
seed and the choice index, so a seeded request gives the same tokens whatever
else shares its batch (and whatever the batch's size).
"""

from __future__ import annotations

import torch

__all__ = ["row_generator", "sample", "top_logprobs"]


def row_generator(seed: int, index: int, device: torch.device) -> torch.Generator:
    """The generator of choice `index` of a request seeded with `seed`."""
    gen = torch.Generator(device=device)
    # A fixed odd multiplier spreads (seed, index) pairs over 63 bits without collisions in practice.
    gen.manual_seed((seed * 0x9E3779B97F4A7C15 + index) % (2**63))
    return gen


def sample(
    logits: torch.Tensor,
    *,
    temperatures: list[float],
    top_ps: list[float],
    generators: list[torch.Generator | None],
) -> list[int]:
    """Next token of each row of `logits` (B, V): argmax where temperature is 0, else a draw."""
    chosen = logits.argmax(dim=-1).tolist()  # (B,)
    rows = [i for i, t in enumerate(temperatures) if t > 0.0]
    if not rows:
        return chosen
    temps = torch.tensor([temperatures[i] for i in rows], dtype=torch.float32, device=logits.device)
    scaled = logits[rows].float() / temps.unsqueeze(1)  # (S, V)
    ps = [top_ps[i] for i in rows]
    if min(ps) < 1.0:
        scaled = _top_p(scaled, torch.tensor(ps, dtype=torch.float32, device=logits.device))
    probs = torch.softmax(scaled, dim=-1)  # (S, V)
    for j, i in enumerate(rows):
        chosen[i] = int(torch.multinomial(probs[j], 1, generator=generators[i]))
    return chosen


def _top_p(scaled: torch.Tensor, ps: torch.Tensor) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability reaches p (nucleus sampling)."""
    sorted_logits, order = scaled.sort(dim=-1, descending=True)  # (S, V)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    # Drop a token when the mass before it already reaches p; the top token always stays.
    drop = (cumulative - sorted_logits.softmax(dim=-1)) >= ps.unsqueeze(1)
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.empty_like(scaled).scatter_(-1, order, sorted_logits)


def top_logprobs(logprobs: torch.Tensor, k: int) -> tuple[list[list[float]], list[list[int]]]:
    """The k most likely tokens of each row of `logprobs` (B, V), as Python lists."""
    values, ids = logprobs.topk(k, dim=-1)  # (B, k)
    return values.tolist(), ids.tolist()
