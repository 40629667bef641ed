"""Chat Completions shapes (openai_api.md §6): the request body, and `ChatCompletion`
and `ChatCompletionChunk` exactly as `openai.types.chat` defines them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from openrft.errors import InvalidRequest

if TYPE_CHECKING:
    from openrft.inference import Completion, TokenLogprob, Usage

__all__ = [
    "ChatCompletionRequest",
    "ChatMessage",
    "ContentPart",
    "StreamOptions",
    "chat_chunk",
    "chat_completion",
    "chat_usage",
    "chunk_choice",
    "logprobs_content",
    "text_of",
]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["developer", "system", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class ChatCompletionRequest(BaseModel):
    """`POST /v1/chat/completions`. Ranges of sampling values are checked by the engine's
    `SamplingParams`, which names the offending parameter."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    n: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    response_format: dict[str, Any] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    tools: list[dict[str, Any]] | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def sampling(self) -> dict[str, Any]:
        """Keyword arguments of the engine's `SamplingParams`."""
        _unsupported(self)
        return {
            "temperature": 1.0 if self.temperature is None else self.temperature,
            "top_p": 1.0 if self.top_p is None else self.top_p,
            "seed": self.seed,
            "stop": (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ()),
            "max_tokens": self.max_completion_tokens or self.max_tokens,
            "n": 1 if self.n is None else self.n,
            "logprobs": bool(self.logprobs),
            "top_logprobs": self.top_logprobs or 0,
            "response_format": self.response_format,
        }

    def engine_messages(self) -> list[dict[str, Any]]:
        """Plain `{"role", "content": str}` messages for the model's chat template."""
        return [
            {"role": m.role, "content": text_of(m.content, f"messages[{i}].content")}
            for i, m in enumerate(self.messages)
        ]


def _unsupported(body: ChatCompletionRequest) -> None:
    # Refuse what the engine cannot do rather than ignore it silently.
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(body, name):
            raise InvalidRequest(f"{name} is not supported by this server", param=name)
    if body.logit_bias:
        raise InvalidRequest("logit_bias is not supported by this server", param="logit_bias")
    if body.tools:
        raise InvalidRequest("tools are not supported by this server", param="tools")


def text_of(content: str | list[ContentPart] | None, param: str) -> str:
    """The text of a message's content (a string, or text parts)."""
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for k, part in enumerate(content):
        if part.type not in ("text", "input_text", "output_text") or part.text is None:
            raise InvalidRequest(
                f"content parts of type {part.type!r} are not supported; send text",
                param=f"{param}[{k}]",
            )
        texts.append(part.text)
    return "".join(texts)


def logprobs_content(items: list[TokenLogprob]) -> list[dict[str, Any]]:
    """OpenAI's `logprobs.content`: one entry a token, each with its `top_logprobs`."""
    return [
        {
            "token": t.token,
            "logprob": t.logprob,
            "bytes": list(t.bytes),
            "top_logprobs": [
                {"token": p.token, "logprob": p.logprob, "bytes": list(p.bytes)}
                for p in t.top_logprobs
            ],
        }
        for t in items
    ]


def chat_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_completion(
    *, id: str, created: int, model: str, choices: list[Completion], usage: Usage
) -> dict[str, Any]:
    """`ChatCompletion`, object `chat.completion`."""
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": c.index,
                "message": {
                    "role": "assistant",
                    "content": c.text,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": (
                    None
                    if c.logprobs is None
                    else {"content": logprobs_content(c.logprobs), "refusal": None}
                ),
                "finish_reason": c.finish_reason,
            }
            for c in choices
        ],
        "usage": chat_usage(usage),
        "service_tier": "default",
        "system_fingerprint": None,
    }


def chunk_choice(
    index: int,
    delta: dict[str, Any],
    *,
    logprobs: list[TokenLogprob] | None = None,
    finish_reason: str | None = None,
) -> dict[str, Any]:
    return {
        "index": index,
        "delta": delta,
        "logprobs": (
            None if logprobs is None else {"content": logprobs_content(logprobs), "refusal": None}
        ),
        "finish_reason": finish_reason,
    }


def chat_chunk(
    *,
    id: str,
    created: int,
    model: str,
    choices: list[dict[str, Any]],
    include_usage: bool,
    usage: Usage | None = None,
) -> dict[str, Any]:
    """`ChatCompletionChunk`; with include_usage every chunk has `usage` (null but the last)."""
    chunk: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": choices,
    }
    if include_usage:
        chunk["usage"] = chat_usage(usage) if usage is not None else None
    return chunk
