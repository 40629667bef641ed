"""Groups whose rewards are all equal carry no gradient: the update leaves them out of the
forward and backward passes, and the step is the same as with them in. The entropy metric
then comes from the sampler, which must give the training forward's entropies."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from openrft.inference import Engine, SamplingParams, build_tiny_model, cache_keyword
from openrft.training._data_parallel import Workers
from openrft.training._losses import PolicyLossConfig
from openrft.training._model import make_optimizer
from openrft.training._policy_update import RolloutBatch, apply_gradients, shard_backward

GROUP = 4
PROMPTS = [[257, 51, 43, 52, 61], [257, 55, 43, 50, 61], [257, 49, 43, 57, 61]]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "m", hidden_size=64, num_layers=2)


def _sampled(model, tiny: Path, sampling: SamplingParams, adapter=None) -> RolloutBatch:
    """A GRPO batch sampled by the engine on `model` (through `adapter`, as the trainer
    samples a LoRA policy), with the sampler's entropies."""
    engine = Engine(model=model, tokenizer=AutoTokenizer.from_pretrained(tiny), max_batch_size=16)
    try:
        groups = engine.generate_groups(
            PROMPTS, GROUP, sampling, seeds=[1, 2, 3], entropies=True, adapter=adapter
        )
    finally:
        engine.close()
    flat = [c for group in groups for c in group]
    return RolloutBatch(
        PROMPTS,
        [c.token_ids for c in flat],
        pad_id=256,
        temperature=sampling.temperature,
        cache_kw=cache_keyword(model),
        entropies=[c.token_entropies for c in flat],
    )


@pytest.mark.parametrize("lora", [False, True])
@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 0.8)])
def test_sampler_entropies_equal_the_training_forward(
    tiny: Path, lora: bool, temperature: float, top_p: float
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    if lora:
        model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
        for name, param in model.named_parameters():  # non-zero B, so the adapter matters
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=0.1)
    sampling = SamplingParams(temperature=temperature, top_p=top_p, max_tokens=8)
    batch = _sampled(model, tiny, sampling, adapter="default" if lora else None)
    assert batch.entropies is not None
    with torch.no_grad():
        _, entropy = batch.logprobs(model)
    mask = batch.completion_mask.bool()
    assert entropy is not None and entropy[mask].min() > 0
    torch.testing.assert_close(batch.entropies[mask], entropy[mask], rtol=1e-4, atol=1e-5)


def _step(model, batch: RolloutBatch, advantages: torch.Tensor, config: PolicyLossConfig):
    """One optimizer step on `batch`; returns the metrics, the gradients, the new weights
    and the input shapes the model's forward passes saw."""
    seen: list[torch.Size] = []
    handle = model.register_forward_pre_hook(
        lambda m, args, kw: seen.append(kw["input_ids"].shape), with_kwargs=True
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, 1e-2)
    metrics, _ = shard_backward(model, batch, advantages, config, Workers(), stop_ids=[258])
    grads = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]
    metrics["grad_norm"] = apply_gradients(params, optimizer, Workers())
    handle.remove()
    return metrics, grads, [p.detach().clone() for p in params], seen


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "bnpo", "dr_grpo"])
@pytest.mark.parametrize("flat_groups", [[1], [0, 2], [0, 1, 2]])
def test_flat_groups_are_skipped_and_the_step_is_unchanged(
    tiny: Path, loss_type: str, flat_groups: list[int]
) -> None:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    batch = _sampled(model, tiny, SamplingParams(temperature=1.0, max_tokens=8))
    advantages = torch.randn(len(PROMPTS) * GROUP)  # (N,)
    for i in flat_groups:
        advantages[i * GROUP : (i + 1) * GROUP] = 0.0
    config = PolicyLossConfig(loss_type=loss_type, max_completion_length=8)

    skipped, skipped_grads, skipped_weights, skipped_seen = _step(
        copy.deepcopy(model), batch, advantages, config
    )
    full_batch = copy.copy(batch)
    full_batch.entropies = None  # no sampler entropies: every group goes through the model
    full, full_grads, full_weights, full_seen = _step(
        copy.deepcopy(model), full_batch, advantages, config
    )

    trained = [i for i in range(len(PROMPTS)) if i not in flat_groups]
    assert batch.signal_groups(advantages) == trained
    # Fewer tokens went through the model (none at all when every group is flat).
    assert sum(s.numel() for s in skipped_seen) < sum(s.numel() for s in full_seen)
    assert (not skipped_seen) == (not trained)
    for a, b in zip(skipped_grads, full_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8)
    # Adam divides by the gradient's own scale: rounding in a gradient near its epsilon
    # moves that weight by a small fraction of the learning rate (1e-2), no more.
    for a, b in zip(skipped_weights, full_weights, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)
    assert skipped.keys() == full.keys()
    for key, value in full.items():
        assert skipped[key] == pytest.approx(value, rel=1e-4, abs=1e-7), key


def test_a_kl_term_trains_every_group(tiny: Path) -> None:
    """With beta > 0 a flat group still has a gradient (its KL term): nothing is skipped."""
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    batch = _sampled(model, tiny, SamplingParams(temperature=1.0, max_tokens=8))
    advantages = torch.zeros(len(PROMPTS) * GROUP)
    with torch.no_grad():
        ref, _ = batch.logprobs(model, with_entropy=False)
    config = PolicyLossConfig(loss_type="dapo", beta=0.1)
    params = [p for p in model.parameters() if p.requires_grad]
    shard_backward(model, batch, advantages, config, Workers(), ref_logps=ref + 0.05)
    assert sum(float(p.grad.abs().sum()) for p in params if p.grad is not None) > 0


@pytest.mark.parametrize(
    "config",
    [
        PolicyLossConfig(loss_type="grpo"),
        PolicyLossConfig(loss_type="dapo", beta=0.1),
        PolicyLossConfig(loss_type="dr_grpo", max_completion_length=8),
    ],
)
def test_a_step_in_several_passes_equals_one_pass(
    tiny: Path, config: PolicyLossConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token budget per pass bounds activation memory; the step is the same."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    batch = _sampled(model, tiny, SamplingParams(temperature=1.0, max_tokens=8))
    batch.entropies = None  # every group through the model, KL term or not
    advantages = torch.randn(len(PROMPTS) * GROUP)  # (N,)
    ref = None
    if config.beta:
        with torch.no_grad():
            ref = batch.logprobs(model, with_entropy=False)[0] + 0.05  # (N, C)

    def step(budget: int):
        monkeypatch.setattr(RolloutBatch, "TOKENS_PER_PASS", budget)
        assert len(batch.passes(list(range(len(PROMPTS))))) == (1 if budget > 1000 else 3)
        copy_ = copy.deepcopy(model)
        metrics, _ = shard_backward(copy_, batch, advantages, config, Workers(), ref_logps=ref)
        return metrics, [p.grad.clone() for p in copy_.parameters()]

    one, one_grads = step(4096)
    three, three_grads = step(1)  # every group its own pass
    for a, b in zip(three_grads, one_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert three.keys() == one.keys()
    for key, value in one.items():
        assert three[key] == pytest.approx(value, rel=1e-5, abs=1e-8), key
