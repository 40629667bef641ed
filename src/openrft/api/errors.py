"""The one place that turns exceptions into OpenAI's error envelope.

`{"error": {"message", "type", "param", "code"}}` with the matching status; routers
raise `OpenRFTError` subclasses and never build error JSON themselves.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from openrft.errors import OpenRFTError, QuotaExceeded, RateLimited

__all__ = ["error_body", "install_error_handlers"]

log = logging.getLogger("openrft.api")

_HTTP_TYPES = {
    401: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
}


def error_body(
    message: str, *, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _openrft_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OpenRFTError)
    headers = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    if exc.status_code == 409 or isinstance(exc, QuotaExceeded):
        # The SDK retries 409 and 429 unless told not to; conflicts and quotas are
        # not cured by waiting half a second.
        headers["x-should-retry"] = "false"
    body = error_body(exc.message, type=exc.error_type, param=exc.param, code=exc.code)
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def _param_from_loc(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out += f"[{p}]" if p.isdigit() else f".{p}"
    return out


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    param = _param_from_loc(tuple(first.get("loc", ())))
    if first.get("type") == "json_invalid":
        message = "We could not parse the JSON body of your request."
        param = None
    elif first.get("type") == "missing":
        message = f"Missing required parameter: '{param}'."
    else:
        message = f"Invalid value for '{param}': {first.get('msg', 'invalid')}."
    body = error_body(message, type="invalid_request_error", param=param)
    return JSONResponse(body, status_code=400)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"Invalid URL ({request.method} {request.url.path})"
    else:
        message = str(exc.detail)
    error_type = _HTTP_TYPES.get(exc.status_code, "invalid_request_error")
    return JSONResponse(
        error_body(message, type=error_type), status_code=exc.status_code, headers=exc.headers
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(OpenRFTError, _openrft_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
