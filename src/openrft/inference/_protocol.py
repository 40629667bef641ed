"""The interface the HTTP layer and the trainer program against (STYLE.md habit 6).

`Engine` (this package's own, CPU or CUDA) and `VLLMEngine` (optional, GPUs) both
satisfy it, so either can be passed in where an engine is expected.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Protocol

from ._params import (
    ChoiceDelta,
    Completion,
    GenerationRequest,
    GenerationResult,
    SamplingParams,
    Usage,
)

__all__ = ["DeltaStream", "InferenceEngine"]


class DeltaStream(Protocol):
    """What `stream()` returns: iterate for deltas; `usage` is set at the end; `aclose()` cancels."""

    usage: Usage | None

    def __aiter__(self) -> AsyncIterator[ChoiceDelta]: ...

    async def aclose(self) -> None: ...


class InferenceEngine(Protocol):
    context_length: int

    @property
    def adapters(self) -> list[str]: ...

    def load_adapter(self, name: str, path: str | Path) -> None: ...

    def unload_adapter(self, name: str) -> None: ...

    def stream(self, request: GenerationRequest) -> DeltaStream: ...

    async def generate(self, request: GenerationRequest) -> GenerationResult: ...

    def generate_groups(
        self,
        prompts: Sequence[Sequence[int]],
        n: int,
        sampling: SamplingParams,
        *,
        adapter: str | None = None,
        seeds: Sequence[int] | None = None,
        entropies: bool = False,
    ) -> list[list[Completion]]: ...

    def close(self) -> None: ...
