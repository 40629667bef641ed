"""Request and result types of the engine, validated once at construction.

Bad values raise `InvalidRequest` naming the OpenAI parameter, so the HTTP layer
turns them into 400s without re-checking (ranges from openai_api.md §6).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from openrft.errors import InvalidRequest

__all__ = [
    "ChoiceDelta",
    "Completion",
    "GenerationRequest",
    "GenerationResult",
    "SamplingParams",
    "TokenLogprob",
    "TopLogprob",
    "Usage",
]

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to sample. `temperature=0` is greedy; `max_tokens=None` runs to the context end.

    `stop` holds at most 4 strings, as OpenAI allows. `response_format` is None,
    `{"type": "text"}`, `{"type": "json_object"}` or `{"type": "json_schema", "schema": {...}}`
    (the Chat form with the schema nested under `"json_schema"` is accepted too).
    `min_tokens` (vLLM's parameter): no stop token may be sampled before this many tokens.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    max_tokens: int | None = None
    n: int = 1
    logprobs: bool = False
    top_logprobs: int = 0
    response_format: Mapping[str, Any] | None = None
    min_tokens: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        _check(0.0 <= self.temperature <= 2.0, "temperature must be between 0 and 2", "temperature")
        _check(0.0 < self.top_p <= 1.0, "top_p must be in (0, 1]", "top_p")
        _check(1 <= self.n <= 128, "n must be between 1 and 128", "n")
        _check(
            0 <= self.top_logprobs <= 20, "top_logprobs must be between 0 and 20", "top_logprobs"
        )
        _check(
            self.logprobs or self.top_logprobs == 0,
            "top_logprobs requires logprobs to be true",
            "top_logprobs",
        )
        _check(
            self.max_tokens is None or self.max_tokens >= 1, "max_tokens must be >= 1", "max_tokens"
        )
        _check(
            0 <= self.min_tokens <= (self.max_tokens or self.min_tokens),
            "min_tokens must be between 0 and max_tokens",
            "min_tokens",
        )
        _check(len(self.stop) <= 4, "stop may hold at most 4 sequences", "stop")
        _check(
            all(isinstance(s, str) and s for s in self.stop),
            "stop sequences must be non-empty strings",
            "stop",
        )
        _check(self.seed is None or isinstance(self.seed, int), "seed must be an integer", "seed")
        json_schema(self.response_format)  # raises on a malformed format

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def json_schema(response_format: Mapping[str, Any] | None) -> dict[str, Any] | bool | None:
    """The constraint a response_format asks for: None (free text), True (any JSON object) or a schema."""
    if response_format is None:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return True
    if kind != "json_schema":
        raise InvalidRequest(f"unsupported response_format type {kind!r}", param="response_format")
    nested = response_format.get("json_schema")
    schema = nested.get("schema") if isinstance(nested, Mapping) else response_format.get("schema")
    if schema is None:
        return True  # OpenAI treats a json_schema without a schema as any JSON object
    if not isinstance(schema, Mapping):
        raise InvalidRequest(
            "response_format schema must be a JSON object", param="response_format"
        )
    return json.loads(json.dumps(schema))  # a plain, hashable-by-text copy


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One request: exactly one of `messages` (chat, templated) or `prompt` (text or token ids).

    `adapter` names a loaded LoRA adapter, or None for the base model.
    """

    messages: Sequence[Mapping[str, Any]] | None = None
    prompt: str | Sequence[int] | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    adapter: str | None = None

    def __post_init__(self) -> None:
        _check(
            (self.messages is None) != (self.prompt is None),
            "give exactly one of messages or prompt",
            "messages",
        )
        if self.messages is not None:
            _check(len(self.messages) > 0, "messages must not be empty", "messages")


@dataclass(frozen=True, slots=True)
class TopLogprob:
    token: str
    logprob: float
    bytes: list[int]


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One output token's entry in OpenAI's `logprobs.content` (raw model log-probabilities)."""

    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[TopLogprob]


@dataclass(frozen=True, slots=True)
class ChoiceDelta:
    """What one choice added in one step of a stream; `finish_reason` is set on its last delta."""

    index: int
    text: str
    token_ids: list[int]
    logprobs: list[TokenLogprob]
    finish_reason: FinishReason | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Completion:
    """One finished choice.

    `token_ids` are every sampled token, the stop token included (the trainer
    learns to stop); `token_logprobs` are their raw model log-probabilities,
    before temperature, top_p or a grammar mask (equal to the sampling policy's
    at temperature 1 and top_p 1). `text` excludes special tokens and stop strings;
    `logprobs` is OpenAI's `content` list (text tokens only), None unless asked for.
    `token_entropies` are the entropies (nats) of `softmax(logits / temperature)` at each
    token, before top_p or a grammar mask: the trainer's entropy of the sampling policy,
    None unless asked for (`generate_groups(entropies=True)`).
    """

    index: int
    text: str
    token_ids: list[int]
    token_logprobs: list[float]
    finish_reason: FinishReason
    logprobs: list[TokenLogprob] | None = None
    token_entropies: list[float] | None = None

    @property
    def truncated(self) -> bool:
        """True when the completion hit max_tokens or the context end, not a stop."""
        return self.finish_reason == "length"


@dataclass(frozen=True, slots=True)
class GenerationResult:
    choices: list[Completion]
    usage: Usage


def _check(ok: bool, message: str, param: str) -> None:
    if not ok:
        raise InvalidRequest(message, param=param)
