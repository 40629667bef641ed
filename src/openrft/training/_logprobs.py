"""Per-token log-probabilities and entropies of completions, without extra `(B, T, V)` copies.

The logits are read a block of rows at a time: `log_softmax(z)[y] = z[y] - logsumexp(z)`, the
gather-then-logsumexp form of TRL's `selective_log_softmax`, so no normalised `(B, T, V)` tensor
is ever built; temperature and bf16 upcasting touch one block at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

__all__ = ["completion_logprobs", "token_entropy", "token_logprobs"]

# Elements of one block of logits rows (64 MiB in fp32): bounds the temporaries of logsumexp.
_BLOCK_ELEMENTS = 1 << 24


def _block_rows(logits: Tensor, temperature: float) -> int:
    """Rows per block for `(B, T, V)` logits; also checks the arguments."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    assert logits.dim() == 3, f"logits must be (B, T, V), got {tuple(logits.shape)}"
    return max(1, _BLOCK_ELEMENTS // logits.shape[-1])


def _split(x: Tensor, rows: int) -> Iterator[Tensor]:
    """Views of `x` (B, T, ...) of about `rows` positions each, in row-major order: whole
    sequences together when a sequence fits a block (one op for a GRPO batch of short
    completions), else pieces of one sequence. Views only: a sliced `logits[:, :-1]` is
    never copied."""
    t = x.shape[1]
    if t <= rows:
        yield from x.split(max(1, rows // max(1, t)))  # (b, T, ...) views
        return
    for sequence in x:  # (T, ...) views
        yield from sequence.split(rows)  # (R, ...) views


def _row_blocks(logits: Tensor, temperature: float, rows: int) -> Iterator[Tensor]:
    """fp32 blocks of logits, each divided by the temperature, one at a time."""
    for block in _split(logits, rows):  # (b, T, V) or (R, V)
        block = block.float()  # a copy only for bf16/fp16 logits
        yield block / temperature if temperature != 1.0 else block


def token_logprobs(logits: Tensor, tokens: Tensor, temperature: float = 1.0) -> Tensor:
    """`log softmax(logits / temperature)` at `tokens`: logits `(B, T, V)`, tokens `(B, T)` → `(B, T)`.

    The sampling policy's log-probabilities are those of the tempered distribution, as in TRL.
    """
    assert tokens.shape == logits.shape[:-1], (
        f"tokens {tuple(tokens.shape)}, logits {tuple(logits.shape)}"
    )
    rows = _block_rows(logits, temperature)
    out = [
        (block.gather(-1, idx.unsqueeze(-1)).squeeze(-1) - block.logsumexp(-1)).reshape(-1)
        for block, idx in zip(
            _row_blocks(logits, temperature, rows), _split(tokens, rows), strict=True
        )
    ]
    return torch.cat(out).view(tokens.shape)  # (B, T)


def token_entropy(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Shannon entropy (nats) of `softmax(logits / temperature)` per position: `(B, T, V)` → `(B, T)`.

    Call it under `torch.no_grad()` when it is only a metric: with gradients each block's
    probabilities are kept for the backward pass.
    """
    out = []
    rows = _block_rows(logits, temperature)
    for block in _row_blocks(logits, temperature, rows):
        logp = block.log_softmax(-1)  # (b, T, V) or (R, V)
        out.append(-(logp.exp() * logp).sum(-1).reshape(-1))  # (b*T,) or (R,)
    return torch.cat(out).view(logits.shape[:-1])  # (B, T)


def completion_logprobs(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor,
    completion_length: int,
    *,
    temperature: float = 1.0,
    with_entropy: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Log-probabilities `(B, C)` of the last `completion_length` tokens of `input_ids` `(B, P+C)`
    under a Hugging Face causal LM, and their entropies `(B, C)` (no gradient) when asked.

    Only the `C + 1` last positions are projected to the vocabulary (`logits_to_keep`).
    """
    c = completion_length
    logits = model(
        input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=c + 1, use_cache=False
    ).logits  # (B, C+1, V)
    logits = logits[:, :-1]  # (B, C, V): position t predicts token t + 1
    tokens = input_ids[:, -c:]  # (B, C)
    logps = token_logprobs(logits, tokens, temperature)  # (B, C)
    if not with_entropy:
        return logps, None
    with torch.no_grad():
        entropy = token_entropy(logits, temperature)  # (B, C)
    return logps, entropy
