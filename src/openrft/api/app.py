"""The FastAPI application: store, error envelope, request ids, one router per resource."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from openrft import __version__
from openrft.api.errors import install_error_handlers
from openrft.api.middleware import RequestIdMiddleware
from openrft.api.routers import files, health, models
from openrft.config import Settings
from openrft.store import Store

__all__ = ["create_app"]

log = logging.getLogger("openrft.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the store is opened, migrated and recovered before the first request."""
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open(
        database_url=settings.resolved_database_url, blob_dir=settings.blob_dir, recover=True
    )
    if settings.api_key:
        store.keys.register("default", settings.api_key, name="OPENRFT_API_KEY")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(
        title="openrft", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.settings = settings
    app.state.store = store
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health.router)
    app.include_router(files.router)
    app.include_router(models.router)
    return app
