"""Inference engine: a base model plus LoRA adapters, batched, streamed, constrained.

The HTTP layer builds `GenerationRequest`s, calls `Engine.stream` or
`Engine.generate`; the GRPO trainer calls `Engine.generate_groups`.
"""

from __future__ import annotations

from ._embedder import TextEmbedder
from ._engine import Engine
from ._export import write_adapter_folder, write_merged_folder
from ._kvcache import cache_keyword
from ._params import (
    ChoiceDelta,
    Completion,
    GenerationRequest,
    GenerationResult,
    SamplingParams,
    TokenLogprob,
    TopLogprob,
    Usage,
)
from ._protocol import DeltaStream, InferenceEngine
from ._stream import TokenStream
from ._tiny_model import build_tiny_model, count_parameters
from ._vllm_backend import VLLMEngine

__all__ = [
    "ChoiceDelta",
    "Completion",
    "DeltaStream",
    "Engine",
    "GenerationRequest",
    "GenerationResult",
    "InferenceEngine",
    "SamplingParams",
    "TextEmbedder",
    "TokenLogprob",
    "TokenStream",
    "TopLogprob",
    "Usage",
    "VLLMEngine",
    "build_tiny_model",
    "cache_keyword",
    "count_parameters",
    "write_adapter_folder",
    "write_merged_folder",
]
