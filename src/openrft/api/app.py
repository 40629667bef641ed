"""The FastAPI application: store, error envelope, request ids, one router per resource."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from openrft import __version__
from openrft.api.errors import install_error_handlers
from openrft.api.middleware import RequestIdMiddleware
from openrft.api.routers import files, health, jobs, models
from openrft.config import Settings
from openrft.jobs import LocalExecutor, Scheduler
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

    executor = LocalExecutor(data_dir=settings.data_dir, log_dir=settings.data_dir / "logs")
    scheduler = Scheduler(
        store=store,
        executor=executor,
        max_concurrent=settings.max_concurrent_jobs,
        lease_ttl=settings.lease_ttl_s,
        max_attempts=settings.max_job_attempts,
        interval=settings.scheduler_interval_s,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        yield
        scheduler.stop()
        store.close()

    app = FastAPI(
        title="openrft", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.settings = settings
    app.state.store = store
    app.state.scheduler = scheduler
    app.state.wake_scheduler = scheduler.wake
    app.state.check_grader = _grader_check(settings)
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health.router)
    app.include_router(files.router)
    app.include_router(models.router)
    app.include_router(jobs.router)
    return app


def _grader_check(settings: Settings):  # noqa: ANN202 - (config, param) -> None
    """Validate a grader config at job creation, so a bad grader is a 400, not a failed job."""
    from openrft.graders import parse_grader

    def check(config: dict, param: str) -> None:
        parse_grader(config, param=param)

    return check
