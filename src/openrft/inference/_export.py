"""Hugging Face folders of served weights, for `/v1/models/{id}/content` and `openrft models export`.

Two shapes, both loadable as they are by `transformers` (with `peft`) and by vLLM:
- an adapter folder: PEFT's `adapter_config.json` + `adapter_model.safetensors`, its
  `base_model_name_or_path` naming the base a user can resolve, plus the tokenizer;
- a full folder: every adapter merged into the weights below it, written with
  `save_pretrained`, with the tokenizer and generation config.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

__all__ = ["write_adapter_folder", "write_merged_folder"]

# Written by the trainer beside the weights; it means nothing outside openrft.
_OPENRFT_MARKER = "openrft.json"


def write_adapter_folder(
    adapter: str | Path, target: Path, *, base_model: str, tokenizer_source: str
) -> None:
    """Copy the PEFT adapter folder `adapter` into `target`, pointing it at `base_model`.

    The tokenizer travels with it (from `tokenizer_source` when the adapter folder has
    none), so `target` alone is enough for vLLM's `--lora-modules` or `PeftModel`.
    """
    source = Path(adapter)
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and path.name != _OPENRFT_MARKER:
            shutil.copy2(path, target / path.name)
    config_path = target / "adapter_config.json"
    config = json.loads(config_path.read_text())
    # The trainer recorded the path it loaded the base from inside the server's data
    # folder (or a merged parent's); the registered source is what a user can resolve.
    config["base_model_name_or_path"] = base_model
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if not (target / "tokenizer_config.json").exists():
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(target)


def write_merged_folder(root: str, adapters: Sequence[str | Path], target: Path) -> None:
    """Load the weights at `root`, merge `adapters` into them in order, `save_pretrained` to `target`.

    Runs on the CPU in the weights' own dtype, so an export never takes GPU memory
    from the engines that serve requests.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(root, dtype="auto")
    for folder in adapters:
        model = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    target.mkdir(parents=True, exist_ok=True)
    # Also writes generation_config.json when `root` has one (eos ids, default sampling).
    model.save_pretrained(target)
    # The serving engine tokenizes with the tokenizer of `root` (the adapters only add weights).
    AutoTokenizer.from_pretrained(root).save_pretrained(target)
