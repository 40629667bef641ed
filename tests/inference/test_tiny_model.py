"""The tiny model and its byte-level tokenizer load through the real from_pretrained path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, PreTrainedModel

from openrft.inference import Engine, build_tiny_model, count_parameters


def test_byte_round_trip_with_multibyte_text(tokenizer: Any) -> None:
    text = "héllo wörld ✓ 👋 a+b=\n\t\x00end"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert ids == list(text.encode("utf-8")), "one token per byte, no merges"
    assert tokenizer.decode(ids) == text


def test_specials_and_chat_template(tokenizer: Any) -> None:
    assert len(tokenizer) == 262
    assert tokenizer.eos_token == "<|end|>"
    assert tokenizer.pad_token == "<pad>"
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+3="},
        {"role": "assistant", "content": "5"},
        {"role": "developer", "content": "again"},
        {"role": "user", "content": "1+1="},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<s><|system|>Be brief.<|end|><|user|>2+3=<|end|><|assistant|>5<|end|>"
        "<|system|>again<|end|><|user|>1+1=<|end|><|assistant|>"
    )
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert ids[:2] == [tokenizer.bos_token_id, tokenizer.convert_tokens_to_ids("<|system|>")]


def test_model_size_and_generation_config(hf_model: PreTrainedModel) -> None:
    assert 850_000 < count_parameters(hf_model) < 950_000  # calibration.md: 0.89M
    assert hf_model.config.tie_word_embeddings
    assert hf_model.config.max_position_embeddings == 2048
    assert hf_model.generation_config.eos_token_id == 258


def test_qwen_arch_loads_into_an_engine(tmp_path: Path) -> None:
    path = build_tiny_model(
        tmp_path / "q",
        arch="qwen",
        hidden_size=64,
        num_layers=2,
        num_heads=2,
        intermediate_size=128,
        max_positions=256,
    )
    assert AutoTokenizer.from_pretrained(path).chat_template is not None
    engine = Engine.from_pretrained(path)
    try:
        assert type(engine.model).__name__ == "Qwen2ForCausalLM"
        assert engine.context_length == 256
    finally:
        engine.close()
