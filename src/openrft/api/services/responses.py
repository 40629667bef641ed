"""`POST /v1/responses`: one `Response`, or its stream of events (openai_api.md §6,
"Event order"): created, in_progress, output_item.added, content_part.added, text
deltas, output_text.done, content_part.done, output_item.done, completed."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from openrft.api.protocol.chat import logprobs_content
from openrft.api.protocol.responses import (
    ResponseRequest,
    output_message,
    output_text,
    response_object,
)
from openrft.api.services.generation import LeasedStream, generate, open_stream
from openrft.api.services.models import ModelServer
from openrft.api.sse import as_openrft_error, sse_event

if TYPE_CHECKING:
    from openrft.inference import TokenLogprob

__all__ = ["create_response"]


async def create_response(
    models: ModelServer, project: str, body: ResponseRequest
) -> dict[str, Any] | AsyncIterator[str]:
    """The response as a dict, or (with `stream`) the SSE lines of its events."""
    sampling = body.sampling()
    messages = body.engine_messages()
    events = _Events(body)
    if not body.stream:
        result = await generate(models, project, body.model, sampling=sampling, messages=messages)
        choice = result.choices[0]
        status = "incomplete" if choice.finish_reason == "length" else "completed"
        item = output_message(
            events.item_id, status=status, content=[output_text(choice.text, choice.logprobs)]
        )
        return events.response(status, [item], usage=result.usage)
    stream = await open_stream(models, project, body.model, sampling=sampling, messages=messages)
    return _events(stream, events, logprobs=sampling["logprobs"])


class _Events:
    """Builds the stream's events in order, numbering each with `sequence_number`."""

    def __init__(self, body: ResponseRequest) -> None:
        self.body = body
        self.id = f"resp_{uuid.uuid4().hex}"
        self.item_id = f"msg_{uuid.uuid4().hex}"
        self.created_at = int(time.time())
        self.seq = 0

    def response(self, status: str, output: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        done = status not in ("in_progress", "queued")
        return response_object(
            self.body,
            id=self.id,
            created_at=self.created_at,
            status=status,
            output=output,
            completed_at=int(time.time()) if done else None,
            **extra,
        )

    def event(self, type: str, **fields: Any) -> str:
        payload = {"type": type, **fields, "sequence_number": self.seq}
        self.seq += 1
        return sse_event(payload)

    def text_event(self, type: str, **fields: Any) -> str:
        return self.event(type, item_id=self.item_id, output_index=0, content_index=0, **fields)


async def _events(stream: LeasedStream, ev: _Events, *, logprobs: bool) -> AsyncIterator[str]:
    text: list[str] = []
    tokens: list[TokenLogprob] = []
    finish = "stop"
    try:
        yield ev.event("response.created", response=ev.response("in_progress", []))
        yield ev.event("response.in_progress", response=ev.response("in_progress", []))
        item = output_message(ev.item_id, status="in_progress", content=[])
        yield ev.event("response.output_item.added", output_index=0, item=item)
        yield ev.text_event("response.content_part.added", part=output_text("", None))
        async for delta in stream:
            if delta.text or (logprobs and delta.logprobs):
                text.append(delta.text)
                tokens.extend(delta.logprobs)
                lps = logprobs_content(delta.logprobs) if logprobs else []
                yield ev.text_event("response.output_text.delta", delta=delta.text, logprobs=lps)
            finish = delta.finish_reason or finish
        full = "".join(text)
        lps = logprobs_content(tokens) if logprobs else []
        yield ev.text_event("response.output_text.done", text=full, logprobs=lps)
        part = output_text(full, tokens if logprobs else None)
        yield ev.text_event("response.content_part.done", part=part)
        status = "incomplete" if finish == "length" else "completed"
        item = output_message(ev.item_id, status=status, content=[part])
        yield ev.event("response.output_item.done", output_index=0, item=item)
        final = ev.response(status, [item], usage=stream.usage)
        yield ev.event(f"response.{status}", response=final)
    except Exception as exc:
        err = as_openrft_error(exc)
        yield ev.event("error", code=err.code, message=err.message, param=err.param)
    finally:
        await stream.aclose()
