"""The openrft error tree.

    OpenRFTError                 500 server_error
    ├── InvalidRequest           400 invalid_request_error (names `param`)
    ├── Unauthorized             401 invalid_api_key
    ├── PermissionDenied         403
    ├── NotFound                 404 (names `param`, e.g. "model" with code model_not_found)
    ├── Conflict                 409
    ├── PayloadTooLarge          413
    ├── RateLimited              429 (carries `retry_after` seconds)
    ├── QuotaExceeded            429 insufficient_quota (a project quota; retrying won't help)
    └── Unavailable              503

Foreign errors (SQLAlchemy, httpx, torch) are translated into these where they
enter openrft; `api/errors.py` alone turns them into OpenAI's error envelope.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "InvalidRequest",
    "NotFound",
    "OpenRFTError",
    "PayloadTooLarge",
    "PermissionDenied",
    "QuotaExceeded",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
]


class OpenRFTError(Exception):
    """Base of every error openrft raises on purpose."""

    status_code: int = 500
    error_type: str = "server_error"
    default_code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code


class InvalidRequest(OpenRFTError):
    status_code = 400
    error_type = "invalid_request_error"


class Unauthorized(OpenRFTError):
    status_code = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDenied(OpenRFTError):
    status_code = 403
    error_type = "invalid_request_error"


class NotFound(OpenRFTError):
    status_code = 404
    error_type = "invalid_request_error"


class Conflict(OpenRFTError):
    status_code = 409
    error_type = "invalid_request_error"


class PayloadTooLarge(OpenRFTError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "file_too_large"


class RateLimited(OpenRFTError):
    status_code = 429
    error_type = "rate_limit_exceeded"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float = 1.0, **kwargs: str | None) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class QuotaExceeded(OpenRFTError):
    """A project quota (storage bytes, concurrent jobs) is used up. 429 with OpenAI's
    `insufficient_quota` type, as its API answers an exhausted quota; the message names
    the quota, its limit and the usage."""

    status_code = 429
    error_type = "insufficient_quota"
    default_code = "quota_exceeded"


class Unavailable(OpenRFTError):
    status_code = 503
    error_type = "server_error"
