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

from openrft.training._packing import PackedLayout, packed_attention

__all__ = [
    "completion_logprobs",
    "group_completion_logprobs",
    "packed_group_logprobs",
    "token_entropy",
    "token_logprobs",
]

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


def _entropy(block: Tensor) -> Tensor:
    """Entropies of one fp32 block `(b, T, V)` or `(R, V)`, flattened: `(b*T,)` or `(R,)`."""
    logp = block.log_softmax(-1)
    return -(logp.exp() * logp).sum(-1).reshape(-1)


def token_entropy(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Shannon entropy (nats) of `softmax(logits / temperature)` per position: `(B, T, V)` → `(B, T)`.

    Call it under `torch.no_grad()` when it is only a metric: with gradients each block's
    probabilities are kept for the backward pass.
    """
    out = []
    rows = _block_rows(logits, temperature)
    for block in _row_blocks(logits, temperature, rows):
        out.append(_entropy(block))
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


def group_completion_logprobs(
    model: Any,
    prompts: list[list[int]],
    completions: list[list[int]],
    *,
    pad_id: int,
    cache_kw: str,
    temperature: float = 1.0,
    with_entropy: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """`completion_logprobs` for GRPO's layout: B prompts, each followed by G completions
    (group-major, `len(completions) == B * G`), with each prompt run through the model once.

    The prompts' forward pass (left-padded, as the engine prefills) fills a KV cache that
    is repeated G times and read by the completions' pass; gradients flow back through
    the repeat into the prompt positions, summed over the group. The result equals the
    full `(B*G, P+C)` forward up to float rounding, at the cost of B prompt passes instead
    of B*G: with short answers to long prompts, most of a step's work.

    Returns log-probabilities `(B*G, C)` of the completion tokens (right-padded to C with
    `pad_id`; mask them with the completion mask) and their entropies (no gradient).
    """
    from transformers import DynamicCache

    b, n = len(prompts), len(completions)
    assert n % b == 0, f"{n} completions do not split into groups of {b} prompts"
    g = n // b
    device = next(model.parameters()).device
    p = max(len(x) for x in prompts)
    c = max(len(x) for x in completions)
    prompt_ids = torch.full((b, p), pad_id, dtype=torch.long)  # (B, P)
    prompt_mask = torch.zeros((b, p), dtype=torch.long)  # (B, P)
    for i, ids in enumerate(prompts):
        prompt_ids[i, p - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        prompt_mask[i, p - len(ids) :] = 1
    tokens = torch.full((n, c), pad_id, dtype=torch.long)  # (N, C)
    for i, ids in enumerate(completions):
        tokens[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    prompt_ids, prompt_mask, tokens = (
        prompt_ids.to(device),
        prompt_mask.to(device),
        tokens.to(device),
    )

    cache = DynamicCache()
    first = model(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        position_ids=(prompt_mask.cumsum(-1) - 1).clamp(min=0),
        use_cache=True,
        logits_to_keep=1,
        **{cache_kw: cache},
    ).logits  # (B, 1, V): predicts each completion's first token
    group = torch.arange(b, device=device).repeat_interleave(g)  # (N,) prompt of each row
    pieces = [(first.index_select(0, group), tokens[:, :1])]  # (N, 1, V), (N, 1)
    if c > 1:
        for layer in cache.layers:
            layer.keys = layer.keys.index_select(0, group)  # (N, H, P, D)
            layer.values = layer.values.index_select(0, group)
        # The last completion token predicts nothing: feed tokens 0..C-2 only.
        lengths = prompt_mask.sum(-1).index_select(0, group)  # (N,)
        positions = lengths.unsqueeze(1) + torch.arange(c - 1, device=device)  # (N, C-1)
        mask = torch.cat(
            [prompt_mask.index_select(0, group), torch.ones_like(tokens[:, :-1])], dim=1
        )  # (N, P+C-1); right padding is never attended to by a real token
        rest = model(
            input_ids=tokens[:, :-1],
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{cache_kw: cache},
        ).logits  # (N, C-1, V)
        pieces.append((rest, tokens[:, 1:]))
    # Per piece, so the (N, C, V) logits are never concatenated into a second copy.
    logps = torch.cat([token_logprobs(z, y, temperature) for z, y in pieces], dim=1)  # (N, C)
    if not with_entropy:
        return logps, None
    with torch.no_grad():
        entropy = torch.cat([token_entropy(z, temperature) for z, _ in pieces], dim=1)  # (N, C)
    return logps, entropy


def _position_stats(logits: Tensor, temperature: float, with_entropy: bool):
    """`logsumexp` and (no-grad) entropy of `softmax(logits / T)` per position: `(B, K, V)` →
    `(B, K)` each, a block at a time."""
    rows = _block_rows(logits, temperature)
    lse, entropy = [], []
    for block in _row_blocks(logits, temperature, rows):
        lse.append(block.logsumexp(-1).reshape(-1))
        if with_entropy:
            with torch.no_grad():
                entropy.append(_entropy(block))
    shape = logits.shape[:-1]
    return torch.cat(lse).view(shape), torch.cat(entropy).view(shape) if with_entropy else None


def packed_group_logprobs(
    model: Any,
    prompts: list[list[int]],
    completions: list[list[int]],
    *,
    pad_id: int,
    temperature: float = 1.0,
    with_entropy: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """`group_completion_logprobs` without padding: the batch as one row, each prompt once
    and each completion's tokens after it (`_packing.PackedLayout`), with attention per
    prompt and per completion; logits only where a completion token is predicted.

    Needs a model whose attention goes through transformers' `AttentionInterface`
    (`_packing.can_pack`); raises `NotPackable` for windowed or soft-capped attention.
    Returns `(B*G, C)` log-probabilities (right-padded to the longest completion) and
    entropies, like the other forms."""
    device = next(model.parameters()).device
    layout = PackedLayout(prompts, completions, pad_id=pad_id).to(device)
    with packed_attention(model, layout):
        logits = model(
            input_ids=layout.input_ids,
            position_ids=layout.position_ids,
            logits_to_keep=layout.keep,
            use_cache=False,
        ).logits  # (1, K, V)
    picked = logits[0, layout.source, layout.tokens]  # (N, C): the tokens' raw logits
    lse, entropy = _position_stats(logits, temperature, with_entropy)  # (1, K) each
    logps = picked.float() / temperature - lse[0, layout.source]  # (N, C)
    return logps, entropy[0, layout.source] if entropy is not None else None
