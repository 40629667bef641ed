"""What each data-parallel rank of tests/training/test_data_parallel.py runs, in a process of
its own (`torch.multiprocessing.spawn` pickles the function by module, so it lives here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM

from openrft.inference import cache_keyword
from openrft.training._data_parallel import Rendezvous, Workers
from openrft.training._losses import PolicyLossConfig
from openrft.training._model import make_optimizer
from openrft.training._policy_update import RolloutBatch, apply_gradients, shard_backward

PAD = 0
STOP = 2  # completions ending on it count as finished when truncated ones are masked
PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [12, 13], [14, 15, 16, 17], [18, 19, 20]]
GROUP = 2
COMPLETIONS = [  # 4 prompts x group 2, group-major, ragged; some end on STOP
    [20, 21, 2], [23],
    [24, 25, 26, 27, 28], [29, 2],
    [31, 32, 33, 34, 35, 36, 2], [36],
    [37, 38, 39, 40, 41], [42, 43, 2],
]  # fmt: skip
ADVANTAGES = [0.7, -0.7, 1.2, -1.2, 0.3, -0.3, -0.9, 0.9]


def step(
    model_dir: Path, config: PolicyLossConfig, workers: Workers, *, truncated: bool
) -> dict[str, Any]:
    """One GRPO update on this rank's share of the fixed rollouts, as `policy_update` runs it:
    returns the (summed, clipped) gradients, the weights after the step and the metrics."""
    torch.manual_seed(0)
    # float64: Adam's first step divides each gradient by |g| + 1e-8, so in float32 the
    # rounding of a near-zero gradient moves its weight by up to lr/100; in float64 the
    # ranks' summed gradients and the one-process gradient agree to ~1e-16.
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, 1e-2)
    lo, hi = workers.shard(len(PROMPTS))
    batch = RolloutBatch(
        PROMPTS[lo:hi],
        COMPLETIONS[lo * GROUP : hi * GROUP],
        pad_id=PAD,
        temperature=0.8,
        cache_kw=cache_keyword(model),
    )
    # A fixed reference policy, a function of the tokens alone: the same on any rank.
    ref = -1.0 - 0.01 * batch.completion_ids.double() if config.beta else None  # (N, C)
    metrics, totals = shard_backward(
        model,
        batch,
        torch.tensor(ADVANTAGES[lo * GROUP : hi * GROUP], dtype=torch.float64),
        config,
        workers,
        stop_ids=[STOP] if truncated else None,
        ref_logps=ref,
    )
    metrics["grad_norm"] = apply_gradients(params, optimizer, workers)
    return {
        "grads": [p.grad.detach().clone() for p in params],
        "weights": [p.detach().clone() for p in params],
        "metrics": metrics,
        "tokens": totals.tokens,
    }


def rank_main(rank: int, port: int, model_dir: str, cases: list[dict], out: str) -> None:
    workers = Workers.join(Rendezvous(rank, 2, "127.0.0.1", port, "gloo"), timeout_s=120)
    try:
        torch.set_num_threads(1)
        results = []
        for case in cases:
            config = PolicyLossConfig(**case["config"])
            results.append(step(Path(model_dir), config, workers, truncated=case["truncated"]))
        torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        workers.close()
