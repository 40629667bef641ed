"""Pure ASGI middleware: a request id on every response and log record, an access log
record per request, and a last-resort 500 envelope."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openrft.logs import request_id_var

__all__ = ["RequestIdMiddleware"]

log = logging.getLogger("openrft.api")
access = logging.getLogger("openrft.access")


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
        status = 500
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
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
            access.info(
                "%s %s %d",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": getattr(scope.get("route"), "path", None),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - began) * 1000, 2),
                },
            )
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
