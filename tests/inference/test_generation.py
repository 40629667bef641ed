"""Engine output against transformers itself: greedy, seeds, stops, lengths, logprobs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import torch
from transformers import PreTrainedModel

from inference.engine_helpers import chat_ids, request, run
from openrft.errors import InvalidRequest
from openrft.inference import Engine, GenerationRequest, SamplingParams

QUESTIONS = ["2+3=", "hello there, how are you today?", "x", "a much longer prompt " * 5, "héllo ✓"]


def test_greedy_matches_model_generate_with_padding(
    engine: Engine, hf_model: PreTrainedModel, tokenizer: Any
) -> None:
    prompts = [chat_ids(tokenizer, q) for q in QUESTIONS]
    assert len({len(p) for p in prompts}) == len(prompts), "lengths differ, so the batch is padded"

    async def all_at_once() -> list[Any]:
        return await asyncio.gather(
            *[engine.generate(request(p, temperature=0, max_tokens=24)) for p in prompts]
        )

    results = run(all_at_once())
    # transformers' own batched, left-padded greedy decoding is the reference.
    tokenizer.padding_side = "left"
    batch = tokenizer.pad({"input_ids": prompts}, return_tensors="pt")
    out = hf_model.generate(
        **batch, do_sample=False, max_new_tokens=24, pad_token_id=tokenizer.pad_token_id
    )
    for i, (prompt, result) in enumerate(zip(prompts, results, strict=True)):
        ref = out[i, batch["input_ids"].shape[1] :].tolist()
        ref = ref[: ref.index(258) + 1] if 258 in ref else ref
        single = hf_model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=24)[
            0, len(prompt) :
        ]
        assert result.choices[0].token_ids == ref == single.tolist()
        assert result.usage.prompt_tokens == len(prompt)


def test_messages_are_templated(engine: Engine, tokenizer: Any) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "2+3="}]}]
    assert engine.encode(GenerationRequest(messages=messages)) == chat_ids(tokenizer, "2+3=")


def test_seeded_sampling_is_reproducible_and_ignores_batch_neighbours(engine: Engine) -> None:
    def req(seed: int) -> GenerationRequest:
        return request("tell me a story", temperature=1.0, top_p=0.9, seed=seed, max_tokens=20)

    alone = run(engine.generate(req(7))).choices[0].token_ids

    async def crowded() -> list[Any]:
        others = [
            request(f"noise {i}" * (i + 1), temperature=1.0, max_tokens=30 + i) for i in range(6)
        ]
        return await asyncio.gather(
            *[engine.generate(r) for r in [*others[:3], req(7), *others[3:], req(8)]]
        )

    results = run(crowded())
    assert results[3].choices[0].token_ids == alone
    assert results[7].choices[0].token_ids != alone, "another seed gives another sample"


def test_n_choices_differ_and_choice_i_is_stable(engine: Engine) -> None:
    three = run(engine.generate(request("abc", temperature=1.0, seed=3, n=3, max_tokens=12)))
    one = run(engine.generate(request("abc", temperature=1.0, seed=3, n=1, max_tokens=12)))
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert len({tuple(c.token_ids) for c in three.choices}) == 3
    assert three.choices[0].token_ids == one.choices[0].token_ids
    assert three.usage.completion_tokens == sum(len(c.token_ids) for c in three.choices)


def test_max_tokens_gives_length(engine: Engine) -> None:
    result = run(engine.generate(request("abc", temperature=0, max_tokens=5)))
    choice = result.choices[0]
    assert len(choice.token_ids) == 5 and choice.finish_reason == "length" and choice.truncated


def test_min_tokens_holds_back_stop_tokens(engine: Engine, tokenizer: Any) -> None:
    """vLLM's `min_tokens`: no stop token before that many tokens, then stops as usual."""
    prompts = [chat_ids(tokenizer, f"{a}+{a}=") for a in range(4)]
    free = SamplingParams(temperature=2.0, max_tokens=40)
    held = SamplingParams(temperature=2.0, max_tokens=40, min_tokens=40)
    early = [c for g in engine.generate_groups(prompts, 16, free, seeds=[1, 2, 3, 4]) for c in g]
    assert any(c.finish_reason == "stop" and len(c.token_ids) < 40 for c in early)
    for group in engine.generate_groups(prompts, 16, held, seeds=[1, 2, 3, 4]):
        for c in group:
            assert len(c.token_ids) == 40
            assert not set(c.token_ids[:-1]) & set(engine.stop_token_ids)


def test_stop_string_cuts_text(engine: Engine) -> None:
    free = run(engine.generate(request("once upon", temperature=0, max_tokens=30))).choices[0]
    stop = free.text[5:8]  # a string the greedy output is known to contain
    cut = run(
        engine.generate(request("once upon", temperature=0, max_tokens=30, stop=[stop]))
    ).choices[0]
    assert cut.finish_reason == "stop"
    assert cut.text == free.text[: free.text.index(stop)]
    assert stop not in cut.text


def test_logprobs_match_a_direct_forward_pass(
    engine: Engine, hf_model: PreTrainedModel, tokenizer: Any
) -> None:
    prompt = chat_ids(tokenizer, "count: 1 2 3")
    sampling = dict(temperature=0.8, seed=1, max_tokens=10, logprobs=True, top_logprobs=3)
    choice = run(engine.generate(request(prompt, **sampling))).choices[0]
    ids = torch.tensor([prompt + choice.token_ids])
    with torch.no_grad():
        logp = torch.log_softmax(
            hf_model(ids).logits[0, len(prompt) - 1 : -1].float(), dim=-1
        )  # (T, V)
    expected = logp.gather(1, torch.tensor(choice.token_ids).unsqueeze(1)).squeeze(1)
    torch.testing.assert_close(torch.tensor(choice.token_logprobs), expected, atol=1e-4, rtol=0)
    assert choice.logprobs is not None
    text_positions = [i for i, t in enumerate(choice.token_ids) if t < 256]
    assert len(choice.logprobs) == len(text_positions)
    for entry, pos in zip(choice.logprobs, text_positions, strict=True):
        assert entry.bytes == [choice.token_ids[pos]]
        assert abs(entry.logprob - float(logp[pos, choice.token_ids[pos]])) < 1e-4
        top_ids = logp[pos].topk(3).indices.tolist()
        assert [t.bytes for t in entry.top_logprobs] == [
            engine._vocab.display_bytes[i] for i in top_ids
        ]
        assert entry.top_logprobs[0].logprob >= entry.logprob - 1e-6


@pytest.mark.parametrize(
    ("sampling", "param"),
    [
        (dict(temperature=2.5), "temperature"),
        (dict(top_p=0.0), "top_p"),
        (dict(n=0), "n"),
        (dict(n=129), "n"),
        (dict(logprobs=True, top_logprobs=21), "top_logprobs"),
        (dict(top_logprobs=2), "top_logprobs"),
        (dict(max_tokens=0), "max_tokens"),
        (dict(min_tokens=-1), "min_tokens"),
        (dict(min_tokens=9, max_tokens=8), "min_tokens"),
        (dict(stop=["a", "b", "c", "d", "e"]), "stop"),
        (dict(response_format={"type": "xml"}), "response_format"),
    ],
)
def test_bad_sampling_values_name_their_param(sampling: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        SamplingParams(**sampling)
    assert err.value.param == param


def test_prompt_longer_than_context_names_messages(engine: Engine) -> None:
    long = [{"role": "user", "content": "x" * engine.context_length}]

    async def go() -> None:
        engine.stream(GenerationRequest(messages=long))

    with pytest.raises(InvalidRequest) as err:
        run(go())
    assert err.value.param == "messages" and err.value.code == "context_length_exceeded"


def test_completion_is_clipped_at_the_context_end(engine: Engine) -> None:
    prompt = [97] * (engine.context_length - 3)
    choice = run(engine.generate(request(prompt, temperature=0, max_tokens=50))).choices[0]
    assert len(choice.token_ids) <= 3 and (
        choice.finish_reason == "length" or choice.token_ids[-1] == 258
    )
