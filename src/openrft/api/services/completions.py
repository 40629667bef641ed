"""`POST /v1/completions` (legacy): one `Completion`, or a stream of them ending in `[DONE]`."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from openrft.api.protocol.completions import (
    CompletionRequest,
    completion_choice,
    completion_choices,
    completion_object,
)
from openrft.api.services.generation import LeasedStream, generate, open_stream
from openrft.api.services.models import ModelServer
from openrft.api.sse import DONE, sse_data, sse_error

__all__ = ["create_completion"]


async def create_completion(
    models: ModelServer, project: str, body: CompletionRequest
) -> dict[str, Any] | AsyncIterator[str]:
    """The completion as a dict, or (with `stream`) the SSE lines of its chunks."""
    head = {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": body.model}
    sampling = body.sampling()
    prompt = body.single_prompt()
    if not body.stream:
        result = await generate(models, project, body.model, sampling=sampling, prompt=prompt)
        return completion_object(
            **head, choices=completion_choices(result.choices), usage=result.usage
        )
    stream = await open_stream(models, project, body.model, sampling=sampling, prompt=prompt)
    return _chunks(stream, head, include_usage=body.include_usage, logprobs=sampling["logprobs"])


async def _chunks(
    stream: LeasedStream, head: dict[str, Any], *, include_usage: bool, logprobs: bool
) -> AsyncIterator[str]:
    """Text deltas; a last chunk per choice with its finish_reason; usage (`choices: []`) if
    asked; `[DONE]`."""
    try:
        async for delta in stream:
            if delta.text or delta.logprobs or delta.finish_reason is not None:
                choice = completion_choice(
                    delta.index,
                    delta.text,
                    logprobs=delta.logprobs if logprobs else None,
                    finish_reason=delta.finish_reason,
                )
                yield sse_data(completion_object(**head, choices=[choice], usage=None))
        if include_usage:
            yield sse_data(completion_object(**head, choices=[], usage=stream.usage))
        yield DONE
    except Exception as exc:
        yield sse_error(exc)
    finally:
        await stream.aclose()
