"""The dashboard: static files served at `/`; every datum comes from the `/v1` API."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Match, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["mount_ui"]

_STATIC_DIR = Path(__file__).parent / "static"

# Paths that stay the API's: the router answers them (404 and 405 in OpenAI's envelope).
_API_PREFIXES = ("/v1", "/healthz")


class _DashboardMount(Mount):
    """A mount at `/` that never claims an API path, so the router's own not-found and
    method-not-allowed answers for `/v1/...` are unchanged by the catch-all."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope.get("path", "")
        if any(path == p or path.startswith(p + "/") for p in _API_PREFIXES):
            return Match.NONE, {}
        return super().matches(scope)


def mount_ui(app: Starlette) -> None:
    """Serve the dashboard at `/`; call after the API routers are included."""
    static = StaticFiles(directory=_STATIC_DIR, html=True)
    app.router.routes.append(_DashboardMount("/", app=static, name="ui"))
