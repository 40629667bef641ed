"""Choosing the next token of every row of a batch.

Each sampled row has its own random stream, keyed by the request's seed and the choice
index, and a draw is indexed by the token's position in the choice: a seeded request
gives the same tokens whatever else shares its batch (and whatever the batch's size).

The stream is splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
generators", OOPSLA 2014), computed for the whole batch at once in int64 tensor
arithmetic, so drawing costs a few vectorised ops per step, not one generator call per
row (per-row `torch.multinomial` was a fifth of a GRPO sampling step).
"""

from __future__ import annotations

import torch

__all__ = ["row_key", "sample", "sampling_entropy", "top_logprobs", "uniforms"]

_MASK64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15


def _signed(c: int) -> int:
    """A 64-bit constant as the int64 with the same bits."""
    return c - (1 << 64) if c >= 1 << 63 else c


def _shr(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 bits (torch's `>>` is arithmetic)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def _mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def row_key(seed: int, index: int) -> int:
    """The stream of choice `index` of a request seeded with `seed` (an int64).

    Hashed, not merely offset: every stream walks the same cycle (`key + n·gamma`), so
    keys one gamma apart would be the same stream shifted by one draw."""
    return _signed(_mix64((_mix64(seed & _MASK64) + index * _GAMMA) & _MASK64))


def uniforms(keys: torch.Tensor, counters: torch.Tensor) -> torch.Tensor:
    """Draw number `counters[i]` of stream `keys[i]`, in (0, 1), float64: `(S,)` → `(S,)`.

    Exactly splitmix64's output sequence seeded with the key (int64 products wrap, as
    the algorithm needs)."""
    z = keys + (counters + 1) * _signed(_GAMMA)
    z = (z ^ _shr(z, 30)) * _signed(0xBF58476D1CE4E5B9)
    z = (z ^ _shr(z, 27)) * _signed(0x94D049BB133111EB)
    z = z ^ _shr(z, 31)
    return (_shr(z, 11).double() + 0.5) * 2.0**-53


def sample(
    logits: torch.Tensor,
    *,
    temperatures: list[float],
    top_ps: list[float],
    keys: list[int | None],
    counters: list[int],
) -> list[int]:
    """Next token of each row of `logits` (B, V): argmax where temperature is 0, else a
    draw from row `keys[i]`'s stream at position `counters[i]`, by inverting the CDF."""
    chosen = logits.argmax(dim=-1).tolist()  # (B,)
    rows = [i for i, t in enumerate(temperatures) if t > 0.0]
    if not rows:
        return chosen
    temps = torch.tensor([temperatures[i] for i in rows], dtype=torch.float32, device=logits.device)
    scaled = logits[rows].float() / temps.unsqueeze(1)  # (S, V)
    ps = [top_ps[i] for i in rows]
    if min(ps) < 1.0:
        scaled = _top_p(scaled, torch.tensor(ps, dtype=torch.float32, device=logits.device))
    cdf = torch.softmax(scaled, dim=-1).double().cumsum(dim=-1)  # (S, V)
    u = uniforms(
        torch.tensor([keys[i] for i in rows], dtype=torch.long),
        torch.tensor([counters[i] for i in rows], dtype=torch.long),
    ).to(cdf.device)  # (S,)
    # The first token whose cumulative mass reaches u: u > 0, so a token of zero
    # probability (masked by top_p) is never chosen.
    picked = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1)).squeeze(1)  # (S,)
    for j, token in enumerate(picked.clamp(max=logits.shape[-1] - 1).tolist()):
        chosen[rows[j]] = token
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


def sampling_entropy(
    logits: torch.Tensor, temperatures: list[float], logprobs: torch.Tensor | None = None
) -> list[float]:
    """Entropy (nats) of `softmax(logits / temperature)` per row of `logits` (B, V), as the
    trainer defines it: before top_p and any grammar mask; temperature 0 counts as 1.
    `logprobs`, the rows' `log_softmax(logits)` when the caller has it, saves a second
    normalisation over the vocabulary when every temperature is 0 or 1."""
    if logprobs is None or any(t not in (0.0, 1.0) for t in temperatures):
        temps = torch.tensor([t if t > 0.0 else 1.0 for t in temperatures], dtype=logits.dtype)
        logprobs = torch.log_softmax(logits / temps.to(logits.device).unsqueeze(1), dim=-1)
    return (-(logprobs.exp() * logprobs).sum(-1)).tolist()  # (B,)
