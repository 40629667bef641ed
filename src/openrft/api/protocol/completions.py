"""Legacy Completions shapes (`POST /v1/completions`, which Bedrock's docs show):
the request body and `openai.types.Completion`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from openrft.api.protocol.chat import StreamOptions
from openrft.errors import InvalidRequest

if TYPE_CHECKING:
    from openrft.inference import Completion, TokenLogprob, Usage

__all__ = [
    "CompletionRequest",
    "completion_choice",
    "completion_choices",
    "completion_object",
    "legacy_logprobs",
]


class CompletionRequest(BaseModel):
    """`POST /v1/completions`: one prompt (a string or token ids) per request."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: Annotated[int, Field(ge=1)] | None = 16  # the legacy API's default
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    logprobs: Annotated[int, Field(ge=0, le=5)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def single_prompt(self) -> str | list[int]:
        """The prompt; a batch of several prompts is refused (send one request each)."""
        prompt = self.prompt
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], str | list):
            if len(prompt) != 1:
                raise InvalidRequest(
                    "only one prompt per request is supported; send one request per prompt",
                    param="prompt",
                )
            prompt = prompt[0]
        assert isinstance(prompt, str | list)
        return prompt  # type: ignore[return-value]

    def sampling(self) -> dict[str, Any]:
        """Keyword arguments of the engine's `SamplingParams`."""
        for name in ("echo", "suffix", "presence_penalty", "frequency_penalty", "logit_bias"):
            if getattr(self, name):
                raise InvalidRequest(f"{name} is not supported by this server", param=name)
        n = 1 if self.n is None else self.n
        if self.best_of not in (None, n):
            raise InvalidRequest("best_of other than n is not supported", param="best_of")
        return {
            "temperature": 1.0 if self.temperature is None else self.temperature,
            "top_p": 1.0 if self.top_p is None else self.top_p,
            "seed": self.seed,
            "stop": (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ()),
            "max_tokens": self.max_tokens,
            "n": n,
            "logprobs": self.logprobs is not None,
            "top_logprobs": self.logprobs or 0,
        }


def legacy_logprobs(items: list[TokenLogprob], offset: int = 0) -> dict[str, Any]:
    """The legacy `logprobs` object: parallel lists, `top_logprobs` as token → logprob maps."""
    offsets = []
    for t in items:
        offsets.append(offset)
        offset += len(t.token)
    return {
        "tokens": [t.token for t in items],
        "token_logprobs": [t.logprob for t in items],
        "top_logprobs": [{p.token: p.logprob for p in t.top_logprobs} for t in items],
        "text_offset": offsets,
    }


def completion_choice(
    index: int,
    text: str,
    *,
    logprobs: list[TokenLogprob] | None,
    finish_reason: str | None,
    offset: int = 0,
) -> dict[str, Any]:
    return {
        "index": index,
        "text": text,
        "logprobs": None if logprobs is None else legacy_logprobs(logprobs, offset),
        "finish_reason": finish_reason,
    }


def completion_object(
    *,
    id: str,
    created: int,
    model: str,
    choices: list[dict[str, Any]],
    usage: Usage | None,
) -> dict[str, Any]:
    """`Completion`, object `text_completion` (a whole response, or one streamed chunk)."""
    out: dict[str, Any] = {
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
        "system_fingerprint": None,
    }
    if usage is not None:
        out["usage"] = {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        }
    return out


def completion_choices(choices: list[Completion]) -> list[dict[str, Any]]:
    return [
        completion_choice(c.index, c.text, logprobs=c.logprobs, finish_reason=c.finish_reason)
        for c in choices
    ]
