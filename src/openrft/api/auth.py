"""Bearer-key authentication: every request resolves to exactly one project."""

from __future__ import annotations

from fastapi import Request

from openrft.errors import Unauthorized

__all__ = ["current_project"]

_MISSING = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


def _redact(key: str) -> str:
    return key[:6] + "*" * 4 + key[-4:] if len(key) > 12 else "****"


def current_project(request: Request) -> str:
    """FastAPI dependency: the project of the request's API key, or 401."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized(_MISSING)
    project = request.app.state.store.keys.project_for(key)
    if project is None:
        raise Unauthorized(f"Incorrect API key provided: {_redact(key)}.")
    request.state.project = project
    return project
