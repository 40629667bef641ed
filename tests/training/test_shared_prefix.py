"""Both prompt-shared training forwards (KV-cache and packed) equal the full per-sample
forward: log-probabilities, entropies and gradients, for full weights and a LoRA adapter,
with ragged prompts and completions, on Llama, Qwen2 (attention biases) and grouped-query
attention; a sliding-window model falls back to the KV-cache layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM

from openrft.inference import build_tiny_model, cache_keyword
from openrft.training import _packing
from openrft.training._logprobs import (
    completion_logprobs,
    group_completion_logprobs,
    packed_group_logprobs,
)
from openrft.training._packing import NotPackable
from openrft.training._policy_update import RolloutBatch

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


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-qwen") / "m"
    return build_tiny_model(folder, arch="qwen", hidden_size=64, num_layers=2)


def _model(tiny: Path, tiny_qwen: Path, arch: str):
    if arch == "qwen":
        return AutoModelForCausalLM.from_pretrained(tiny_qwen, dtype=torch.float32)
    if arch == "llama-gqa":  # 4 query heads share 2 key/value heads
        config = AutoConfig.from_pretrained(tiny)
        config.num_key_value_heads = 2
        torch.manual_seed(1)
        return AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)


def _shared(model, prompts, completions, monkeypatch, **kw):
    """ "cache", or the packed layout with its attention forced to one of its two forms:
    padded blocks per prompt and completion, or one masked attention over the row."""
    layout = kw.pop("layout")
    if layout.startswith("packed"):

        def forced(self: _packing.PackedLayout, heads: int, width: int):
            return self.blocks() if layout == "packed-blocks" else self.row_mask()

        monkeypatch.setattr(_packing.PackedLayout, "_cheaper", forced)
        return packed_group_logprobs(model, prompts, completions, pad_id=PAD, **kw)
    return group_completion_logprobs(
        model, prompts, completions, pad_id=PAD, cache_kw=cache_keyword(model), **kw
    )


@pytest.mark.parametrize(
    ("layout", "arch", "lora"),
    [
        ("cache", "llama", False),
        ("cache", "llama", True),
        *[(f"packed-{form}", "llama", False) for form in ("blocks", "row")],
        *[(f"packed-{form}", "llama", True) for form in ("blocks", "row")],
        *[(f"packed-{form}", "qwen", False) for form in ("blocks", "row")],
        *[(f"packed-{form}", "llama-gqa", False) for form in ("blocks", "row")],
    ],
)
def test_shared_prefix_equals_full_forward(
    tiny: Path, tiny_qwen: Path, layout: str, arch: str, lora: bool, monkeypatch
) -> None:
    model = _model(tiny, tiny_qwen, arch)
    torch.manual_seed(0)
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

    shared, shared_entropy = _shared(
        model, PROMPTS, COMPLETIONS, monkeypatch, layout=layout, temperature=0.7
    )
    (shared * weights)[mask].sum().backward()

    torch.testing.assert_close(shared[mask], full[mask], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shared_entropy[mask], full_entropy[mask], rtol=1e-5, atol=1e-5)
    for p, expected in zip(params, full_grads, strict=True):
        torch.testing.assert_close(p.grad, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layout", ["cache", "packed-blocks", "packed-row"])
@pytest.mark.parametrize(
    "completions",
    [
        [[20], [21], [22], [23], [24], [25]],  # nothing for the completion block to attend
        [[20], [21, 22, 23], [24], [25, 26], [27], [28]],  # some single tokens among longer
    ],
)
def test_one_token_completions(
    tiny: Path, layout: str, completions: list[list[int]], monkeypatch
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    ids, attention, mask, c = _full_layout(PROMPTS[:2], completions, GROUP)
    full, _ = completion_logprobs(model, ids, attention, c)
    shared, _ = _shared(model, PROMPTS[:2], completions, monkeypatch, layout=layout)
    torch.testing.assert_close(shared[mask], full[mask], rtol=1e-5, atol=1e-5)


def test_sliding_window_model_uses_the_cache_layout(tmp_path: Path) -> None:
    """Attention the packed layout cannot apply is refused, and the training batch then
    computes the same numbers through the KV-cache layout, window included."""
    config = AutoConfig.for_model(
        "qwen2", vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, use_sliding_window=True,
        sliding_window=4, max_window_layers=0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    prompts, completions = [[5, 6, 7, 8, 9, 10, 11], [12, 13]], COMPLETIONS[:6]
    with pytest.raises(NotPackable):
        packed_group_logprobs(model, prompts, completions, pad_id=PAD)
    batch = RolloutBatch(
        prompts, completions, pad_id=PAD, temperature=1.0, cache_kw=cache_keyword(model)
    )
    ids, attention, mask, c = _full_layout(prompts, completions, GROUP)
    full, _ = completion_logprobs(model, ids, attention, c)
    shared, _ = batch.logprobs(model)
    torch.testing.assert_close(shared[mask], full[mask], rtol=1e-5, atol=1e-5)


def test_short_rows_take_the_row_mask_and_long_rows_the_blocks() -> None:
    """The measured cost model: the demo's ~160-token row runs fastest under one mask,
    the compute scale's ~7,000-token row as padded blocks (benchmarks/README.md)."""
    short = _packing.PackedLayout([[1] * 8] * 8, [[2] * 3] * 64, pad_id=PAD)
    long = _packing.PackedLayout([[1] * 8] * 8, [[2] * 110] * 64, pad_id=PAD)
    assert isinstance(short._cheaper(heads=4, width=128), _packing._RowMask)
    assert isinstance(long._cheaper(heads=8, width=512), _packing._Blocks)
