"""LoRA adapters served beside their base model.

The base model is wrapped in a PeftModel when the first adapter is loaded; each
forward pass then runs with exactly one adapter active, or with all adapters
off for the base model, so the base output is unchanged beside any adapter.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import PeftModel

from openrft.errors import NotFound

__all__ = ["AdapterSet"]


class AdapterSet:
    """The adapters loaded on one model; `model` is the module to call (wrapped once adapters exist)."""

    def __init__(self, *, model: torch.nn.Module, lock: threading.RLock) -> None:
        self.model = model
        self._lock = lock
        # False: unknown, so the first switch always happens.
        self._active: str | None | bool = False
        # A PeftModel handed in by a trainer must get its active adapter back after serving:
        # training on layers left disabled by a base-model request would silently go wrong.
        self._home: str | None = model.active_adapter if isinstance(model, PeftModel) else None

    @property
    def names(self) -> list[str]:
        if isinstance(self.model, PeftModel):
            return sorted(self.model.peft_config)
        return []

    def load(self, name: str, path: str | Path) -> None:
        """Load the PEFT adapter saved at `path` under `name` (replacing one of that name)."""
        with self._lock:
            if name in self.names:
                self.unload(name)
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(path), adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name)
            self.model.eval()
            self._active = False

    def unload(self, name: str) -> None:
        with self._lock:
            if name not in self.names:
                raise NotFound(
                    f"adapter {name!r} is not loaded", param="model", code="model_not_found"
                )
            assert isinstance(self.model, PeftModel)
            if len(self.names) == 1:
                # PEFT cannot hold zero adapters: strip the LoRA layers, back to the bare model.
                self.model = self.model.unload()
            else:
                if self.model.active_adapter == name:  # PEFT warns when the active one goes
                    self.model.set_adapter(next(n for n in self.names if n != name))
                self.model.delete_adapter(name)
            self._active = False

    def restore(self) -> None:
        """Put back the adapter the model came with (after a trainer's generation)."""
        if self._home is not None and self._active != self._home and self._home in self.names:
            with self._lock, self.activate(self._home):
                pass

    @contextmanager
    def activate(self, name: str | None) -> Iterator[None]:
        """Run the enclosed forward passes with adapter `name` (None: the base model)."""
        if name is not None and name not in self.names:
            raise NotFound(f"adapter {name!r} is not loaded", param="model", code="model_not_found")
        if isinstance(self.model, PeftModel) and self._active != name:
            lora = self.model.base_model
            if name is None:
                lora.disable_adapter_layers()
            else:
                lora.enable_adapter_layers()
                self.model.set_adapter(name)
            self._active = name
        yield
