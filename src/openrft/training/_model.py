"""Loading the policy a job trains: base weights, a fine-tuned parent merged in
(Decision 4), then full fine-tuning or a fresh LoRA adapter (Decision 5)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from openrft.methods import choose_full_fine_tuning
from openrft.store import ModelRow, Store

__all__ = ["Policy", "load_policy", "load_weights_into", "make_optimizer", "save_weights"]


@dataclass
class Policy:
    model: Any  # a PreTrainedModel, or a PeftModel around one
    tokenizer: Any
    full: bool
    n_params: int

    @property
    def weights_format(self) -> str:
        return "full" if self.full else "adapter"


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _load_base(source: str) -> PreTrainedModel:
    # fp32 on CPU (bf16 matmul is ~100x slower there); bf16 on a GPU that supports it.
    dtype = (
        torch.bfloat16
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        else torch.float32
    )
    return AutoModelForCausalLM.from_pretrained(source, dtype=dtype).to(device())


def resolve_weights(store: Store, row: ModelRow) -> tuple[PreTrainedModel, str]:
    """The full weights a model id stands for (adapters merged), and its tokenizer source."""
    if row.kind == "base":
        return _load_base(row.source), row.source
    path = str(store.blobs.path(row.source))
    if row.weights_format == "full":
        return _load_base(path), path
    base_row = store.models.get_base(row.base_model or "")
    if base_row is None:
        raise ValueError(f"base model {row.base_model} of {row.id} is not registered")
    parent_id = (row.details or {}).get("parent")
    if parent_id:
        parent = store.models.get_any(parent_id)
        base, tok = (
            resolve_weights(store, parent)
            if parent
            else (_load_base(base_row.source), base_row.source)
        )
    else:
        base, tok = _load_base(base_row.source), base_row.source
    merged = PeftModel.from_pretrained(base, path).merge_and_unload()
    return merged, tok


def load_policy(
    store: Store, model_id: str, *, fine_tuning_type: str, lora_rank: int, lora_alpha: int
) -> Policy:
    row = store.models.get_any(model_id)
    if row is None:
        raise ValueError(f"model {model_id} is not registered")
    model, tokenizer_source = resolve_weights(store, row)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    n_params = sum(p.numel() for p in model.parameters())
    full = choose_full_fine_tuning(fine_tuning_type, n_params)
    if not full:
        config = LoraConfig(
            r=lora_rank,
            lora_alpha=lora_alpha,
            target_modules="all-linear",
            lora_dropout=0.0,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, config)
    return Policy(model=model, tokenizer=tokenizer, full=full, n_params=n_params)


def save_weights(policy: Policy, folder: Path) -> None:
    """A folder that `from_pretrained` (full) or `PeftModel.from_pretrained` (adapter) loads."""
    folder.mkdir(parents=True, exist_ok=True)
    policy.model.save_pretrained(folder)
    policy.tokenizer.save_pretrained(folder)
    (folder / "openrft.json").write_text(json.dumps({"weights_format": policy.weights_format}))


def load_weights_into(policy: Policy, folder: Path) -> None:
    """Overwrite the policy's trainable weights with those saved by `save_weights`."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    if policy.full:
        state = load_file(str(folder / "model.safetensors"), device=str(device()))
        missing, unexpected = policy.model.load_state_dict(state, strict=False)
        tied = {k for k in missing if "lm_head" in k}
        if unexpected or set(missing) - tied:
            raise ValueError(f"checkpoint does not match the model: {missing} {unexpected}")
    else:
        state = load_file(str(folder / "adapter_model.safetensors"), device=str(device()))
        set_peft_model_state_dict(policy.model, state)


def make_optimizer(params: list[Any], learning_rate: float) -> torch.optim.Optimizer:
    """AdamW without weight decay; the fused kernel (one pass over all parameters, 3x
    faster on this CPU at 0.9M and 27M parameters) wherever torch has it."""
    return torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0, fused=True)
