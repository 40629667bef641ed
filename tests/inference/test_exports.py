"""The package exports exactly its documented names."""

from __future__ import annotations

import openrft.inference as inference


def test_public_names() -> None:
    assert inference.__all__ == sorted(inference.__all__)
    public = {n for n in vars(inference) if not n.startswith("_")}
    assert set(inference.__all__) <= public
    assert {
        "Engine",
        "SamplingParams",
        "GenerationRequest",
        "Completion",
        "build_tiny_model",
    } <= set(inference.__all__)
