"""A LoRA adapter changes its requests' output; the base model's stays the same beside it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer
from transformers import AutoModelForCausalLM

from inference.engine_helpers import request, run
from openrft.errors import InvalidRequest
from openrft.inference import Engine, GenerationRequest, SamplingParams


def _make_adapter(base_path: Path, out: Path, seed: int) -> Path:
    model = AutoModelForCausalLM.from_pretrained(base_path)
    peft_model = get_peft_model(
        model,
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj", "down_proj"]),
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:  # lora_B starts at zero: perturb both so the adapter matters
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
    peft_model.save_pretrained(out)
    return out


def test_adapters_beside_the_base(tiny_path: Path, tmp_path: Path) -> None:
    engine = Engine.from_pretrained(tiny_path)
    try:
        prompt = "adapters!"
        # Seeded sampling reads the whole distribution: a random model's greedy path is too flat a probe.
        sampling = dict(temperature=1.0, seed=4, max_tokens=16)
        base_before = run(engine.generate(request(prompt, **sampling))).choices[0].token_ids
        engine.load_adapter("a", _make_adapter(tiny_path, tmp_path / "a", seed=1))
        engine.load_adapter("b", _make_adapter(tiny_path, tmp_path / "b", seed=2))
        assert engine.adapters == ["a", "b"]

        async def together() -> list[Any]:
            reqs = [request(prompt, **sampling) for _ in range(3)]
            reqs[1] = type(reqs[1])(prompt=prompt, sampling=reqs[1].sampling, adapter="a")
            reqs[2] = type(reqs[2])(prompt=prompt, sampling=reqs[2].sampling, adapter="b")
            return await asyncio.gather(*[engine.generate(r) for r in reqs])

        base, a, b = (r.choices[0].token_ids for r in run(together()))
        assert base == base_before
        assert a != base and b != base and a != b
        engine.unload_adapter("b")
        engine.unload_adapter("a")
        assert engine.adapters == []
        assert run(engine.generate(request(prompt, **sampling))).choices[0].token_ids == base
        with pytest.raises(InvalidRequest):
            run(engine.generate(GenerationRequest(prompt=prompt, adapter="a")))
    finally:
        engine.close()


def test_engine_on_a_trainers_peft_model_leaves_it_trainable(
    tiny_path: Path, tokenizer: Any
) -> None:
    # Decision 3: the training worker builds an engine on the very model it trains.
    model = AutoModelForCausalLM.from_pretrained(tiny_path)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    engine = Engine(model=peft_model, tokenizer=tokenizer)
    try:
        assert engine.model is peft_model and engine.adapters == ["default"]
        sampling = SamplingParams(temperature=1.0, seed=1, max_tokens=4)
        engine.generate_groups([[97, 98]], 2, sampling, adapter="default")
        engine.generate_groups([[97, 98]], 2, sampling)  # the base policy, adapter layers off
        lora_layers = [m for m in peft_model.modules() if isinstance(m, LoraLayer)]
        assert lora_layers and not any(m.disable_adapters for m in lora_layers), "adapter back on"
        assert peft_model.active_adapter == "default"
    finally:
        engine.close()
