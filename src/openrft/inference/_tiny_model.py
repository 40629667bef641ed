"""Tiny random-weight causal LMs for tests and the demo (no hub on these machines).

The model is transformers' own Llama or Qwen2 class and is written with
`save_pretrained`, so it loads through the same `from_pretrained` path as a hub
model such as "Qwen/Qwen3-0.6B" (DESIGN.md, "Models without the internet").
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from transformers import (
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from ._tokenizer import build_byte_tokenizer

__all__ = ["build_tiny_model", "count_parameters"]


def build_tiny_model(
    path: str | Path,
    *,
    arch: Literal["llama", "qwen"] = "llama",
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    intermediate_size: int = 384,
    max_positions: int = 2048,
    seed: int = 0,
) -> Path:
    """Build and save a random-weight causal LM with a byte-level tokenizer; return its folder.

    The defaults give ~0.89M parameters, the size measured in calibration.md.
    """
    path = Path(path)
    tokenizer = build_byte_tokenizer()
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model: PreTrainedModel
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif arch == "qwen":
        model = Qwen2ForCausalLM(Qwen2Config(**common, use_sliding_window=False))
    else:
        raise ValueError(f"unknown arch {arch!r}: use 'llama' or 'qwen'")
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def count_parameters(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())
