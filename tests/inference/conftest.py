"""A tiny random-weight model built once per session, an engine on it, and helpers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from openrft.inference import Engine, build_tiny_model


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def hf_model(tiny_path: Path) -> PreTrainedModel:
    return AutoModelForCausalLM.from_pretrained(tiny_path).eval()


@pytest.fixture(scope="session")
def tokenizer(tiny_path: Path) -> Any:
    return AutoTokenizer.from_pretrained(tiny_path)


@pytest.fixture(scope="session")
def engine(tiny_path: Path) -> Iterator[Engine]:
    eng = Engine.from_pretrained(tiny_path, device="cpu", max_batch_size=64, max_queue=256)
    yield eng
    eng.close()
