"""`POST /v1/chat/completions`: one `ChatCompletion`, or a stream of `ChatCompletionChunk`
(openai_api.md §6, "Streaming")."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from openrft.api.protocol.chat import (
    ChatCompletionRequest,
    chat_chunk,
    chat_completion,
    chunk_choice,
)
from openrft.api.services.generation import LeasedStream, generate, open_stream
from openrft.api.services.models import ModelServer
from openrft.api.sse import DONE, sse_data, sse_error

if TYPE_CHECKING:
    from openrft.inference import Usage

__all__ = ["create_chat_completion"]


async def create_chat_completion(
    models: ModelServer, project: str, body: ChatCompletionRequest
) -> dict[str, Any] | AsyncIterator[str]:
    """The completion as a dict, or (with `stream`) the SSE lines of its chunks."""
    header = _Header(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=body.model,
        include_usage=body.include_usage,
    )
    sampling = body.sampling()
    messages = body.engine_messages()
    if not body.stream:
        result = await generate(models, project, body.model, sampling=sampling, messages=messages)
        return chat_completion(
            id=header.id,
            created=header.created,
            model=header.model,
            choices=result.choices,
            usage=result.usage,
        )
    stream = await open_stream(models, project, body.model, sampling=sampling, messages=messages)
    return _chunks(stream, header, n=sampling["n"], logprobs=sampling["logprobs"])


@dataclass(frozen=True, slots=True)
class _Header:
    id: str
    created: int
    model: str
    include_usage: bool

    def line(self, choices: list[dict[str, Any]], usage: Usage | None = None) -> str:
        chunk = chat_chunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=choices,
            include_usage=self.include_usage,
            usage=usage,
        )
        return sse_data(chunk)


async def _chunks(
    stream: LeasedStream, header: _Header, *, n: int, logprobs: bool
) -> AsyncIterator[str]:
    """First a role delta per choice, then content deltas, then a `delta: {}` chunk with the
    finish_reason per choice, the usage chunk (`choices: []`) if asked, and `[DONE]`."""
    try:
        for index in range(n):
            yield header.line([chunk_choice(index, {"role": "assistant", "content": ""})])
        async for delta in stream:
            if delta.text or delta.logprobs:
                choice = chunk_choice(
                    delta.index,
                    {"content": delta.text},
                    logprobs=delta.logprobs if logprobs else None,
                )
                yield header.line([choice])
            if delta.finish_reason is not None:
                choice = chunk_choice(delta.index, {}, finish_reason=delta.finish_reason)
                yield header.line([choice])
        if header.include_usage:
            yield header.line([], usage=stream.usage)
        yield DONE
    except Exception as exc:
        yield sse_error(exc)
    finally:
        await stream.aclose()
