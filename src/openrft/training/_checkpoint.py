"""Training state that resumes exactly: weights, optimizer, RNG and data position.

A checkpoint folder holds `model/` (servable weights) and `state.pt`:
    {"step": int, "optimizer": dict, "rng": {...}, "method": dict, "trained_tokens": int,
     "history": list[dict]}
The data position is the step itself: each epoch's order is a permutation seeded by
(seed, epoch), so the step says exactly which examples come next.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["load_state", "rng_state", "save_state", "set_rng_state"]


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(folder: Path, state: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "state.pt")


def load_state(folder: Path) -> dict[str, Any]:
    # Our own file, written by `save_state`: it holds RNG tuples and numpy arrays.
    return torch.load(folder / "state.pt", weights_only=False)
