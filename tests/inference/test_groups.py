"""generate_group(s): one prefill per prompt, n samples each, log-probabilities for the trainer."""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedModel

from inference.engine_helpers import chat_ids
from openrft.inference import Engine, SamplingParams


def test_group_logprobs_match_a_direct_forward(
    engine: Engine, hf_model: PreTrainedModel, tokenizer: Any
) -> None:
    prompt = chat_ids(tokenizer, "3+4=")
    group = engine.generate_group(prompt, 8, SamplingParams(temperature=1.0, seed=11, max_tokens=6))
    assert [c.index for c in group] == list(range(8))
    assert len({tuple(c.token_ids) for c in group}) > 1
    for c in group:
        assert 1 <= len(c.token_ids) <= 6
        assert c.truncated == (c.finish_reason == "length")
        ids = torch.tensor([prompt + c.token_ids])
        with torch.no_grad():
            logp = torch.log_softmax(
                hf_model(ids).logits[0, len(prompt) - 1 : -1], dim=-1
            )  # (T, V)
        expected = logp.gather(1, torch.tensor(c.token_ids).unsqueeze(1)).squeeze(1)
        torch.testing.assert_close(torch.tensor(c.token_logprobs), expected, atol=1e-4, rtol=0)


def test_groups_are_seeded_per_prompt(engine: Engine, tokenizer: Any) -> None:
    prompts = [chat_ids(tokenizer, f"{a}+{a}=") for a in range(8)]
    sampling = SamplingParams(temperature=1.0, max_tokens=6)
    first = engine.generate_groups(prompts, 8, sampling, seeds=list(range(100, 108)))
    again = engine.generate_groups(prompts[2:4], 8, sampling, seeds=[102, 103])
    assert len(first) == 8 and all(len(g) == 8 for g in first)
    assert [[c.token_ids for c in g] for g in first[2:4]] == [
        [c.token_ids for c in g] for g in again
    ]
