"""Server-sent events: the wire format of streamed responses, and the response that sends them.

Chat and legacy completions send bare `data:` lines ending with `data: [DONE]`
(an `event:` line would make older SDKs wrap the payload); the Responses API sends
`event: <type>` beside each `data:` (openai_api.md §6).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from openrft.api.errors import error_body
from openrft.errors import OpenRFTError

__all__ = [
    "DONE",
    "EventStreamResponse",
    "as_openrft_error",
    "json_or_stream",
    "sse_data",
    "sse_error",
    "sse_event",
]

log = logging.getLogger("openrft.api")

DONE = "data: [DONE]\n\n"


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def sse_data(payload: dict[str, Any]) -> str:
    return f"data: {_json(payload)}\n\n"


def sse_event(payload: dict[str, Any]) -> str:
    return f"event: {payload['type']}\ndata: {_json(payload)}\n\n"


def as_openrft_error(exc: Exception) -> OpenRFTError:
    """An error raised after a stream started, as the typed error its event reports."""
    if isinstance(exc, OpenRFTError):
        return exc
    log.error("generation failed mid-stream", exc_info=exc)
    return OpenRFTError("The server had an error while processing your request.")


def sse_error(exc: Exception) -> str:
    """A `data: {"error": ...}` line: the SDK raises APIError on it (chat and completions)."""
    err = as_openrft_error(exc)
    return sse_data(error_body(err.message, type=err.error_type, param=err.param, code=err.code))


class EventStreamResponse(StreamingResponse):
    """`text/event-stream` that closes its iterator however the response ends, so a client
    that disconnects mid-stream cancels its request and frees its rows at once."""

    def __init__(self, content: AsyncIterator[str]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._source = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self._source, "aclose", None)
            if close is not None:
                await close()


def json_or_stream(result: dict[str, Any] | AsyncIterator[str]) -> Response:
    """What a generation service returned: a whole answer as JSON, or its SSE lines."""
    if isinstance(result, dict):
        return JSONResponse(result)
    return EventStreamResponse(result)
