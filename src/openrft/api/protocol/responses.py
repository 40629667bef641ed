"""Responses API shapes (openai_api.md §6): the request body, `Response`, and the stream
events of `openai.types.responses` (`sequence_number` on each, `logprobs` on text events)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from openrft.api.protocol.chat import ContentPart, logprobs_content, text_of
from openrft.errors import InvalidRequest

if TYPE_CHECKING:
    from openrft.inference import TokenLogprob, Usage

__all__ = [
    "InputMessage",
    "ResponseRequest",
    "output_message",
    "output_text",
    "response_object",
    "response_usage",
]


class InputMessage(BaseModel):
    """An input item; only messages (`type` "message" or left out) are supported."""

    model_config = ConfigDict(extra="allow")

    type: Literal["message"] | None = None
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]


class ResponseRequest(BaseModel):
    """`POST /v1/responses`. Nothing is stored: `store` is reported as false."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    input: str | list[InputMessage]
    instructions: str | None = None
    max_output_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_logprobs: int | None = None
    stream: bool | None = None
    text: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    tools: list[dict[str, Any]] | None = None
    previous_response_id: str | None = None
    user: str | None = None

    def format(self) -> dict[str, Any]:
        """`text.format` (the flat form: name and schema beside `type`), `text` by default."""
        fmt = (self.text or {}).get("format") or {"type": "text"}
        if not isinstance(fmt, dict) or fmt.get("type") not in (
            "text",
            "json_object",
            "json_schema",
        ):
            raise InvalidRequest(
                "text.format.type must be text, json_object or json_schema", param="text.format"
            )
        if fmt["type"] == "json_schema" and not (
            fmt.get("name") and isinstance(fmt.get("schema"), dict)
        ):
            raise InvalidRequest(
                "a json_schema format needs a name and a schema", param="text.format"
            )
        return fmt

    def sampling(self) -> dict[str, Any]:
        """Keyword arguments of the engine's `SamplingParams`."""
        if self.tools:
            raise InvalidRequest("tools are not supported by this server", param="tools")
        if self.previous_response_id:
            raise InvalidRequest(
                "responses are not stored on this server, so previous_response_id is not supported",
                param="previous_response_id",
            )
        fmt = self.format()
        return {
            "temperature": 1.0 if self.temperature is None else self.temperature,
            "top_p": 1.0 if self.top_p is None else self.top_p,
            "max_tokens": self.max_output_tokens,
            "logprobs": self.top_logprobs is not None,
            "top_logprobs": self.top_logprobs or 0,
            "response_format": None if fmt["type"] == "text" else fmt,
        }

    def engine_messages(self) -> list[dict[str, Any]]:
        """`instructions` as a system turn, then the input (a string is one user message)."""
        messages = [{"role": "system", "content": self.instructions}] if self.instructions else []
        if isinstance(self.input, str):
            return [*messages, {"role": "user", "content": self.input}]
        for i, m in enumerate(self.input):
            messages.append({"role": m.role, "content": text_of(m.content, f"input[{i}].content")})
        if not messages:
            raise InvalidRequest("input must not be empty", param="input")
        return messages


def response_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def output_text(text: str, logprobs: list[TokenLogprob] | None) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "output_text", "text": text, "annotations": []}
    if logprobs is not None:
        part["logprobs"] = logprobs_content(logprobs)
    return part


def output_message(item_id: str, *, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    """A `ResponseOutputMessage` (`status` in_progress, completed or incomplete)."""
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def response_object(
    body: ResponseRequest,
    *,
    id: str,
    created_at: int,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None = None,
    completed_at: int | None = None,
) -> dict[str, Any]:
    """A `Response`; `status` "incomplete" carries the max_output_tokens reason."""
    return {
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": completed_at,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "model": body.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": 1.0 if body.temperature is None else body.temperature,
        "text": {"format": body.format()},
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": body.top_logprobs,
        "top_p": 1.0 if body.top_p is None else body.top_p,
        "truncation": "disabled",
        "usage": response_usage(usage) if usage is not None else None,
        "user": body.user,
        "metadata": body.metadata or {},
    }
