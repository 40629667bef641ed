"""Decision 13 on fixed rollouts: two gloo ranks, each differentiating its share of the batch
through the trainer's own update (`shard_backward`, `apply_gradients`), sum to the
one-process gradient of the whole batch, and step to the same weights, for every loss type."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from openrft.inference import build_tiny_model
from openrft.training._data_parallel import Workers
from openrft.training._losses import PolicyLossConfig
from support import free_port
from training.dp_ranks import rank_main, step

CASES = [
    {"config": {"loss_type": "grpo", "max_completion_length": 8}, "truncated": False},
    {"config": {"loss_type": "dr_grpo", "max_completion_length": 8}, "truncated": False},
    {"config": {"loss_type": "dapo", "max_completion_length": 8}, "truncated": False},
    {"config": {"loss_type": "bnpo", "max_completion_length": 8}, "truncated": False},
    # truncated completions masked out, and a KL penalty: the token counts change per rank
    {"config": {"loss_type": "dapo", "beta": 0.1}, "truncated": True},
    {"config": {"loss_type": "grpo", "beta": 0.1}, "truncated": True},
]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[dict]]]:
    """Both ranks' results for every case, from one two-process run."""
    tmp = tmp_path_factory.mktemp("dp")
    model = build_tiny_model(tmp / "tiny", hidden_size=64, num_layers=2)
    mp.spawn(rank_main, args=(free_port(), str(model), CASES, str(tmp)), nprocs=2, join=True)
    return model, [torch.load(tmp / f"rank{r}.pt") for r in range(2)]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_two_ranks_equal_one_process(ranks, case: int) -> None:
    model, results = ranks
    spec = CASES[case]
    one = step(model, PolicyLossConfig(**spec["config"]), Workers(), truncated=spec["truncated"])
    assert one["metrics"]["grad_norm"] > 0
    for rank in results:
        got = rank[case]
        for name, want in (("grads", one["grads"]), ("weights", one["weights"])):
            for a, b in zip(got[name], want, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
        assert got["tokens"] == one["tokens"]
        assert got["metrics"].keys() == one["metrics"].keys()
        for key, value in one["metrics"].items():
            assert got["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-9), key
    # The ranks hold identical weights, bit for bit: they stepped on the same summed gradient.
    for a, b in zip(results[0][case]["weights"], results[1][case]["weights"], strict=True):
        assert torch.equal(a, b)
