"""Both prompt-shared training forwards (KV-cache and packed) equal the full per-sample
forward: log-probabilities, entropies and gradients, for full weights and a LoRA adapter,
with ragged prompts and completions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from openrft.inference import build_tiny_model, cache_keyword
from openrft.training._logprobs import (
    completion_logprobs,
    group_completion_logprobs,
    pack_groups,
    packed_group_logprobs,
)

PAD = 0
PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [12, 13], [14, 15, 16, 17]]
COMPLETIONS = [  # 3 prompts x group 3, group-major, ragged
    [20, 21, 22], [23], [24, 25, 26, 27, 28],
    [29, 30], [31, 32, 33, 34, 35], [36],
    [37, 38, 39, 40, 41], [42, 43], [44, 45, 46],
]  # fmt: skip
GROUP = 3


def _full_layout(prompts, completions, group):
    """The per-sample `(N, P+C)` layout: prompts left-padded, completions right-padded."""
    rows = [prompts[i // group] for i in range(len(completions))]
    p, c = max(map(len, rows)), max(map(len, completions))
    ids = torch.full((len(rows), p + c), PAD)
    attention = torch.zeros_like(ids)
    for i, (prompt, completion) in enumerate(zip(rows, completions, strict=True)):
        ids[i, p - len(prompt) : p] = torch.tensor(prompt)
        ids[i, p : p + len(completion)] = torch.tensor(completion)
        attention[i, p - len(prompt) : p + len(completion)] = 1
    return ids, attention, attention[:, p:].bool(), c


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "m", hidden_size=64, num_layers=2)


def _shared(model, prompts, completions, **kw):
    layout = kw.pop("layout")
    if layout.startswith("packed"):
        # "packed-1": one group per row (a budget below any group); "packed": all in one row
        budget = 1 if layout == "packed-1" else 512
        return packed_group_logprobs(
            model, prompts, completions, pad_id=PAD, row_tokens=budget, **kw
        )
    return group_completion_logprobs(
        model, prompts, completions, pad_id=PAD, cache_kw=cache_keyword(model), **kw
    )


@pytest.mark.parametrize("layout", ["cache", "packed", "packed-1"])
@pytest.mark.parametrize("lora", [False, True])
def test_shared_prefix_equals_full_forward(tiny: Path, lora: bool, layout: str) -> None:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    if lora:
        model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
        for name, param in model.named_parameters():  # non-zero B, so the adapter matters
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=0.1)
    params = [p for p in model.parameters() if p.requires_grad]
    ids, attention, mask, c = _full_layout(PROMPTS, COMPLETIONS, GROUP)
    weights = torch.randn(mask.shape)  # (N, C): a loss that weighs every token differently

    full, full_entropy = completion_logprobs(model, ids, attention, c, temperature=0.7)
    (full * weights)[mask].sum().backward()
    full_grads = [p.grad.clone() for p in params]
    model.zero_grad()

    shared, shared_entropy = _shared(model, PROMPTS, COMPLETIONS, layout=layout, temperature=0.7)
    (shared * weights)[mask].sum().backward()

    torch.testing.assert_close(shared[mask], full[mask], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shared_entropy[mask], full_entropy[mask], rtol=1e-5, atol=1e-5)
    for p, expected in zip(params, full_grads, strict=True):
        torch.testing.assert_close(p.grad, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layout", ["cache", "packed", "packed-1"])
def test_one_token_completions(tiny: Path, layout: str) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    completions = [[20], [21], [22], [23], [24], [25]]
    ids, attention, mask, c = _full_layout(PROMPTS[:2], completions, GROUP)
    full, _ = completion_logprobs(model, ids, attention, c)
    shared, _ = _shared(model, PROMPTS[:2], completions, layout=layout)
    torch.testing.assert_close(shared[mask], full[mask], rtol=1e-5, atol=1e-5)


def test_pack_groups_first_fit() -> None:
    assert pack_groups([5, 3, 4, 2, 9], budget=8) == [[0, 1], [2, 3], [4]]
