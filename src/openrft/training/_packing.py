"""GRPO's training batch as one padding-free row: each group's prompt once, then its
completions, with attention computed per prompt and per completion.

The linear layers (nearly all of the work) see only real tokens, in one `(1, T)` row: no
padding and no repeated prompts. Attention is the one place where tokens must not see
each other, so it runs through our own function, registered in transformers'
`AttentionInterface`: it gathers the row's queries, keys and values into two padded
blocks — the prompts `(B, H, P, D)`, and the completions `(N, H, M, D)` whose keys are
their prompt's followed by their own — runs `scaled_dot_product_attention` on each, and
scatters the results back into the row. Attention thus costs what separate sequences
cost, where a block mask over the whole row would cost `T²`; a short row (the demo's)
runs fastest under that one mask all the same, so each batch takes the cheaper form.

The layout travels to the attention function through a context variable, set only for
the forward pass that uses it (`packed_attention`).
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["NotPackable", "PackedLayout", "can_pack", "packed_attention"]

ATTENTION_NAME = "openrft_packed"
_active: contextvars.ContextVar[PackedLayout | None] = contextvars.ContextVar(
    "openrft_packed_layout", default=None
)


class _Block(NamedTuple):
    """One padded attention block over the row's tokens."""

    queries: Tensor  # (R, L) row positions; padding points at a real token of the sequence
    keys: Tensor  # (R, S) row positions, likewise
    mask: Tensor  # (R, 1, L, S) True where a query may attend
    real: Tensor  # (K,) the real queries, as indices into the flattened (R*L,) queries
    rows: Tensor  # (K,) their row positions

    @classmethod
    def build(cls, queries: Tensor, keys: Tensor, mask: Tensor, real: Tensor) -> _Block:
        """`real` `(R, L)` marks the real queries."""
        flat = real.reshape(-1).nonzero().squeeze(1)  # (K,)
        return cls(queries, keys, mask.unsqueeze(1), flat, queries.reshape(-1)[flat])

    def to(self, device: torch.device) -> _Block:
        return _Block(*(x.to(device) for x in self))


class PackedLayout:
    """B prompts and their groups of completions (group-major, G per prompt) in one row.

    The row holds, per group, the prompt and then each completion's tokens but its last
    (which predicts nothing). `input_ids` and `position_ids` are `(1, T)`: positions
    restart at each prompt, and each completion continues from its prompt's length, as
    if it ran alone. `keep` `(K,)` are the positions whose logits are needed (each
    prompt's last token, then every completion input token) and `source` `(N, C)`
    indexes `keep` for each completion token's predicting position (0 for padding)."""

    def __init__(
        self, prompts: list[list[int]], completions: list[list[int]], *, pad_id: int
    ) -> None:
        b, n = len(prompts), len(completions)
        assert n % b == 0, f"{n} completions do not split into groups of {b} prompts"
        g = n // b
        ids: list[int] = []
        positions: list[int] = []
        prompt_at: list[int] = []  # row position of each prompt's first token
        inputs_at: list[int] = []  # row position of each completion's first input token
        group_of: list[int] = []  # each token's group
        sequence_of: list[int] = []  # each token's completion, -1 for prompt tokens
        for i, prompt in enumerate(prompts):
            prompt_at.append(len(ids))
            ids += prompt
            positions += range(len(prompt))
            sequence_of += [-1] * len(prompt)
            for j in range(i * g, (i + 1) * g):
                inputs = completions[j][:-1]
                inputs_at.append(len(ids))
                ids += inputs
                positions += range(len(prompt), len(prompt) + len(inputs))
                sequence_of += [j] * len(inputs)
            group_of += [i] * (len(ids) - prompt_at[-1])
        p_len = [len(x) for x in prompts]
        m_len = [max(0, len(x) - 1) for x in completions]  # input tokens per completion
        self.input_ids = torch.tensor([ids], dtype=torch.long)  # (1, T)
        self.position_ids = torch.tensor([positions], dtype=torch.long)  # (1, T)
        self._spans = (prompt_at, inputs_at, p_len, m_len, g)  # for the blocks, if chosen
        # Logits: each prompt's last position (B of them), then every completion input.
        last = [at + p - 1 for at, p in zip(prompt_at, p_len, strict=True)]
        inputs = [at + t for at, m in zip(inputs_at, m_len, strict=True) for t in range(m)]
        self.keep = torch.tensor(last + inputs, dtype=torch.long)  # (K,)
        c = max(len(x) for x in completions)
        tokens, source = [], []  # (N, C) each, padded
        offset = b  # completion inputs start after the B prompt positions in `keep`
        for j, completion in enumerate(completions):
            k = len(completion)
            tokens.append(completion + [pad_id] * (c - k))
            source.append(([j // g] if k else []) + list(range(offset, offset + k - 1)))
            source[-1] += [0] * (c - len(source[-1]))
            offset += max(0, k - 1)
        self.tokens = torch.tensor(tokens, dtype=torch.long)  # (N, C)
        self.source = torch.tensor(source, dtype=torch.long)  # (N, C) into keep
        self.group_of = torch.tensor(group_of)  # (T,)
        self.sequence_of = torch.tensor(sequence_of)  # (T,)
        self._attention: _RowMask | _Blocks | None = None

    def to(self, device: torch.device) -> PackedLayout:
        for name in ("input_ids", "position_ids", "keep", "tokens", "source"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def blocks(self) -> _Blocks:
        prompt_at, inputs_at, p_len, m_len, g = self._spans
        return _Blocks(
            _prompt_block(prompt_at, p_len),
            _completion_block(prompt_at, inputs_at, p_len, m_len, g),
        ).to(self.input_ids.device)

    def row_mask(self) -> _RowMask:
        return _RowMask(self.group_of, self.sequence_of, self.input_ids.device)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, dropout: float, scaling: float):
        """Attention over the row `(1, H, T, D)` → `(1, T, H, D)`, chosen at the first
        layer and kept for the others."""
        if self._attention is None:
            self._attention = self._cheaper(heads=q.shape[1], width=q.shape[1] * q.shape[3])
        return self._attention(q, k, v, dropout, scaling), None

    def _cheaper(self, heads: int, width: int) -> _RowMask | _Blocks:
        """The whole row under one mask, or the padded blocks, whichever costs less.

        Attention on CPU costs about 0.19 ns per score element and unit of width (H·D),
        forward and backward, plus ~4 µs per block row and head: short rows (the demo's
        ~160 tokens) run fastest as one masked `(T, T)` attention, long ones as blocks
        (measured in benchmarks/README.md, "Padding-free training")."""
        _, _, p_len, m_len, _ = self._spans
        t, p, m = self.input_ids.shape[1], max(p_len), max(m_len)
        rows = len(p_len) + sum(1 for x in m_len if x)  # prompt rows, completion rows
        scores = len(p_len) * p * p + (rows - len(p_len)) * m * (p + m)
        if t * t * width * 0.19e-3 <= scores * width * 0.19e-3 + rows * heads * 4.0:  # µs
            return self.row_mask()
        return self.blocks()


class _RowMask:
    """The row's attention as one `(1, 1, T, T)` mask: a token sees the earlier tokens of
    its group's prompt and of its own sequence."""

    def __init__(self, group_of: Tensor, sequence_of: Tensor, device: torch.device) -> None:
        t = torch.arange(len(group_of))
        same_group = group_of.unsqueeze(0) == group_of.unsqueeze(1)  # (T, T) [query, key]
        visible = (sequence_of == -1).unsqueeze(0) | (
            sequence_of.unsqueeze(0) == sequence_of.unsqueeze(1)
        )  # (T, T)
        causal = t.unsqueeze(0) <= t.unsqueeze(1)  # (T, T)
        self.mask = (same_group & visible & causal).view(1, 1, len(t), len(t)).to(device)

    def __call__(self, q: Tensor, k: Tensor, v: Tensor, dropout: float, scaling: float) -> Tensor:
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=self.mask, dropout_p=dropout, scale=scaling,
            enable_gqa=q.shape[1] != k.shape[1],
        )  # fmt: skip  # (1, H, T, D)
        return out.transpose(1, 2)  # (1, T, H, D)


class _Blocks:
    """The row's attention as two padded blocks, prompts and completions."""

    def __init__(self, prompts: _Block, completions: _Block) -> None:
        self.prompts, self.completions = prompts, completions
        order = torch.cat([prompts.rows, completions.rows])  # (T,)
        # For each row position, where its output sits in the blocks' concatenated outputs.
        self.inverse = torch.empty_like(order)  # (T,)
        self.inverse[order] = torch.arange(len(order), device=order.device)

    def to(self, device: torch.device) -> _Blocks:
        return _Blocks(self.prompts.to(device), self.completions.to(device))

    def __call__(self, q: Tensor, k: Tensor, v: Tensor, dropout: float, scaling: float) -> Tensor:
        q, k, v = (x[0].transpose(0, 1) for x in (q, k, v))  # (T, H, D) views
        outputs = [
            _attend_block(block, q, k, v, dropout=dropout, scaling=scaling)
            for block in (self.prompts, self.completions)
            if block.queries.numel()
        ]  # (K_prompt, H, D), (K_completion, H, D)
        return torch.cat(outputs).index_select(0, self.inverse).unsqueeze(0)  # (1, T, H, D)


def _prompt_block(prompt_at: list[int], p_len: list[int]) -> _Block:
    """Causal attention within each prompt: queries and keys `(B, P)`."""
    p = max(p_len)
    t = torch.arange(p)
    start, length = torch.tensor(prompt_at), torch.tensor(p_len)
    real = t < length.unsqueeze(1)  # (B, P)
    index = start.unsqueeze(1) + torch.where(real, t, 0)  # (B, P); padding -> first token
    # A padding query sees its prompt (so no row is empty); its output is dropped.
    mask = (t.view(1, 1, p) <= t.view(1, p, 1)) | ~real.unsqueeze(2)  # (B, P, P)
    mask &= real.unsqueeze(1)  # keys: real tokens only
    return _Block.build(index, index, mask, real)


def _completion_block(
    prompt_at: list[int], inputs_at: list[int], p_len: list[int], m_len: list[int], g: int
) -> _Block:
    """Each completion's input tokens attend to their prompt and causally to themselves:
    queries `(N', M)`, keys `(N', P + M)` for the N' completions with any input token."""
    rows = [j for j, m in enumerate(m_len) if m > 0]
    if not rows:  # every completion is a single token: nothing to attend
        empty = torch.zeros((0, 0), dtype=torch.long)
        return _Block.build(empty, empty, empty.bool().view(0, 0, 0), empty.bool())
    p, m = max(p_len), max(m_len)
    group = torch.tensor([j // g for j in rows])  # (N',)
    prompt_start = torch.tensor(prompt_at).index_select(0, group)  # (N',)
    prompt_len = torch.tensor(p_len).index_select(0, group)  # (N',)
    start = torch.tensor([inputs_at[j] for j in rows])  # (N',)
    length = torch.tensor([m_len[j] for j in rows])  # (N',)
    s, t = torch.arange(p), torch.arange(m)
    prompt_real = s < prompt_len.unsqueeze(1)  # (N', P)
    real = t < length.unsqueeze(1)  # (N', M)
    queries = start.unsqueeze(1) + torch.where(real, t, 0)  # (N', M)
    keys = torch.cat(
        [prompt_start.unsqueeze(1) + torch.where(prompt_real, s, 0), queries], dim=1
    )  # (N', P+M)
    own = (t.view(1, 1, m) <= t.view(1, m, 1)) & real.unsqueeze(1)  # (N', M, M) causal
    mask = torch.cat([prompt_real.unsqueeze(1).expand(-1, m, -1), own], dim=2)  # (N', M, P+M)
    return _Block.build(queries, keys, mask, real)


def _attend_block(
    block: _Block, q: Tensor, k: Tensor, v: Tensor, *, dropout: float, scaling: float
) -> Tensor:
    """sdpa over one block, gathered from the row's `(T, H, D)` tensors; returns the real
    queries' outputs `(K, H, D)` in the block's flattened order."""
    r, length = block.queries.shape
    s = block.keys.shape[1]

    def gather(x: Tensor, index: Tensor, n: int) -> Tensor:
        return x.index_select(0, index.reshape(-1)).view(r, n, *x.shape[1:]).transpose(1, 2)

    qb, kb, vb = (
        gather(q, block.queries, length),
        gather(k, block.keys, s),
        gather(v, block.keys, s),
    )
    out = F.scaled_dot_product_attention(
        qb, kb, vb, attn_mask=block.mask, dropout_p=dropout, scale=scaling,
        enable_gqa=qb.shape[1] != kb.shape[1],
    )  # fmt: skip  # (R, H, L, D)
    return out.transpose(1, 2).reshape(r * length, *out.shape[1::2]).index_select(0, block.real)


def _packed_attention_forward(
    module: Any,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[Tensor, None]:
    layout = _active.get()
    if layout is None:
        raise RuntimeError("the packed attention runs only inside `packed_attention`")
    if kwargs.get("sliding_window") is not None or kwargs.get("softcap") is not None:
        raise NotPackable("sliding-window or soft-capped attention")
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    return layout.attend(query, key, value, dropout, scaling)


class NotPackable(RuntimeError):
    """A layer's attention has a window or soft cap the packed layout does not apply."""


def can_pack(model: Any) -> bool:
    """Whether the model routes attention through transformers' `AttentionInterface`
    (`_supports_attention_backend`), so the packed layout can take it over."""
    return bool(getattr(model, "_supports_attention_backend", False))


@functools.cache
def _register() -> None:
    """Once per process: transformers looks the function up by name at each layer."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, _packed_attention_forward)


@contextmanager
def packed_attention(model: Any, layout: PackedLayout) -> Iterator[None]:
    """Run the model's attention through `layout` for the forward passes inside.

    Switches `config._attn_implementation` for the duration: with no mask function
    registered under this name, transformers builds no mask at all (the layout is the
    mask). Raises `NotPackable` when a layer's attention cannot be packed. The model must
    not run elsewhere meanwhile: the trainer samples and trains in turn, never at once."""
    _register()
    config = model.config
    previous = config._attn_implementation
    token = _active.set(layout)
    config._attn_implementation = ATTENTION_NAME
    try:
        yield
    finally:
        config._attn_implementation = previous
        _active.reset(token)
