"""On a CUDA machine (Decision 15): the engine loads there and still matches transformers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from inference.engine_helpers import chat_ids, request, run
from openrft.inference import Engine

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_cuda_defaults_and_greedy_match(tiny_path: Path, tokenizer: Any) -> None:
    engine = Engine.from_pretrained(tiny_path)  # CUDA, bf16 where supported
    try:
        assert engine.model.device.type == "cuda"
        result = run(engine.generate(request("hello", temperature=1.0, seed=1, max_tokens=8)))
        assert len(result.choices[0].token_ids) >= 1
    finally:
        engine.close()
    # fp32 on the GPU: token-for-token equality with model.generate there.
    engine = Engine.from_pretrained(tiny_path, dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(tiny_path).to("cuda").eval()
    try:
        prompt = chat_ids(tokenizer, "2+3=")
        ours = run(engine.generate(request(prompt, temperature=0, max_tokens=16))).choices[0]
        ref = model.generate(
            torch.tensor([prompt], device="cuda"), do_sample=False, max_new_tokens=16
        )
        assert ours.token_ids == ref[0, len(prompt) :].tolist()
    finally:
        engine.close()
