"""Pure ASGI middleware: a request id on every response and log record, and a
last-resort 500 envelope. (The access record is written by `metrics.MetricsMiddleware`,
which already times each request and knows its status.)"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openrft.logs import request_id_var

__all__ = ["RequestIdMiddleware"]

log = logging.getLogger("openrft.api")


class RequestIdMiddleware:
    """Sets `x-request-id` (the SDK reads it into `_request_id`) on every HTTP response,
    error responses included, and turns an unhandled exception into OpenAI's envelope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{uuid.uuid4().hex}"
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error in request %s", request_id)
            if started:
                raise
            await _send_500(send, request_id)
        finally:
            request_id_var.reset(token)


async def _send_500(send: Send, request_id: str) -> None:
    body: dict[str, Any] = {
        "error": {
            "message": f"The server had an error processing your request (request id {request_id}).",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
