"""The vectorised splitmix64 stream equals the reference algorithm, and sampling by CDF
inversion draws tokens with their probabilities."""

from __future__ import annotations

import math

import torch

from openrft.inference._sampling import row_key, sample, uniforms

MASK = (1 << 64) - 1


def _splitmix64(seed: int, n: int) -> list[int]:
    """The reference: Steele et al.'s SplitMix64, in Python integers."""
    out, state = [], seed & MASK
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        out.append(z ^ (z >> 31))
    return out


def test_uniforms_are_splitmix64() -> None:
    keys = [row_key(seed, index) for seed in (0, 1, 2**40 + 7) for index in (0, 3)]
    for key in keys:
        expected = [((z >> 11) + 0.5) * 2.0**-53 for z in _splitmix64(key, 20)]
        got = uniforms(torch.tensor([key] * 20), torch.arange(20))
        assert got.tolist() == expected


def test_draws_follow_the_probabilities() -> None:
    probs = torch.tensor([0.5, 0.25, 0.125, 0.125, 0.0])
    logits = probs.log().unsqueeze(0).expand(20_000, -1)  # (20000, 5)
    n = logits.shape[0]
    tokens = sample(
        logits, temperatures=[1.0] * n, top_ps=[1.0] * n,
        keys=[row_key(7, i) for i in range(n)], counters=[0] * n,
    )  # fmt: skip
    counts = torch.bincount(torch.tensor(tokens), minlength=5).double() / n
    assert counts[4] == 0  # zero probability: never
    for p, f in zip(probs.tolist()[:4], counts.tolist()[:4], strict=True):
        assert abs(f - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_a_rows_draw_ignores_its_neighbours_and_top_p_masks() -> None:
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    keys, counters = [row_key(1, 0), row_key(1, 1), row_key(2, 0)], [4, 4, 9]
    together = sample(
        logits, temperatures=[1.0] * 3, top_ps=[1.0] * 3, keys=keys, counters=counters
    )
    alone = [
        sample(logits[i : i + 1], temperatures=[1.0], top_ps=[1.0], keys=[keys[i]], counters=[counters[i]])[0]
        for i in range(3)
    ]  # fmt: skip
    assert together == alone
    nucleus = sample(
        logits, temperatures=[1.0] * 3, top_ps=[1e-6] * 3, keys=keys, counters=counters
    )
    assert nucleus == logits.argmax(-1).tolist()  # p → 0 keeps only the top token
