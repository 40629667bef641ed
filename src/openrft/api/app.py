"""The FastAPI application: store, error envelope, request ids, one router per resource."""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from openrft import __version__
from openrft.api.errors import install_error_handlers
from openrft.api.metrics import Metrics, MetricsMiddleware
from openrft.api.middleware import RequestIdMiddleware
from openrft.api.routers import chat, completions, files, graders, health, jobs, models, responses
from openrft.api.services.embeddings import LazyEmbedder
from openrft.api.services.models import ModelServer
from openrft.config import Settings
from openrft.graders import GradingService, grader_settings
from openrft.jobs import Executor, LocalExecutor, RayExecutor, RetentionSweeper, Scheduler
from openrft.store import ProjectLimits, Store
from openrft.ui import mount_ui

__all__ = ["create_app"]

log = logging.getLogger("openrft.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the store is opened, migrated and recovered before the first request."""
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open(
        database_url=settings.resolved_database_url,
        blob_dir=settings.blob_dir,
        blob_url=settings.blob_url,
        recover=True,
    )
    if settings.api_key:
        store.keys.register("default", settings.api_key, name="OPENRFT_API_KEY")
    judge_key = settings.judge_api_key or _internal_judge_key(settings, store)
    embedding_model = settings.resolved_embedding_model
    grading = GradingService(
        settings=grader_settings(settings, judge_api_key=judge_key),
        embedder=LazyEmbedder(embedding_model) if embedding_model else None,
    )

    executor = _executor(
        settings,
        # Workers grade with the same judge endpoint as the server.
        env={
            "OPENRFT_JUDGE_BASE_URL": settings.resolved_judge_base_url,
            "OPENRFT_JUDGE_API_KEY": judge_key,
            # Workers keep checkpoints where the server keeps blobs (`--blob-url` included).
            **({"OPENRFT_BLOB_URL": settings.blob_url} if settings.blob_url else {}),
            # ...and write to the server's database, `--database-url` included.
            **({"OPENRFT_DATABASE_URL": settings.database_url} if settings.database_url else {}),
        },
    )
    scheduler = Scheduler(
        store=store,
        executor=executor,
        max_concurrent=settings.max_concurrent_jobs,
        lease_ttl=settings.lease_ttl_s,
        max_attempts=settings.max_job_attempts,
        interval=settings.scheduler_interval_s,
    )
    sweeper = RetentionSweeper(
        store=store,
        defaults=ProjectLimits.defaults(settings),
        interval=settings.retention_interval_s,
    )

    model_server = ModelServer(
        store=store,
        max_loaded_models=settings.max_loaded_models,
        max_loaded_adapters=settings.max_loaded_adapters,
        engine_options={
            "max_batch_size": settings.max_batch_size,
            "max_queue": settings.max_queued_requests,
            "num_threads": settings.torch_threads,
        },
    )

    # `--role api` replicas only serve; the `scheduler` (or `all`) processes run the jobs.
    runs_jobs = settings.role in ("all", "scheduler")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if runs_jobs:
            scheduler.start()
            sweeper.start()
        yield
        if runs_jobs:
            sweeper.stop()
            scheduler.stop()
        model_server.close()
        await grading.aclose()
        store.close()

    app = FastAPI(
        title="openrft", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.settings = settings
    app.state.store = store
    app.state.scheduler = scheduler if runs_jobs else None
    # Without a scheduler here, a scheduler process finds new jobs at its next tick.
    app.state.wake_scheduler = scheduler.wake if runs_jobs else lambda: None
    app.state.grading = grading
    app.state.models = model_server
    app.state.check_grader = _grader_check(grading)
    app.state.metrics = Metrics(store=store, models=model_server, grading=grading)
    install_error_handlers(app)
    # Middleware added last runs first: the request id wraps everything, metrics included.
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health.router)
    if settings.role == "scheduler":  # probes only: no API, no dashboard
        return app
    app.include_router(files.router)
    app.include_router(models.router)
    app.include_router(jobs.router)
    app.include_router(graders.router)
    app.include_router(chat.router)
    app.include_router(responses.router)
    app.include_router(completions.router)
    mount_ui(app)  # last: the dashboard at `/` must not shadow an API route
    return app


def _executor(settings: Settings, *, env: dict[str, str]) -> Executor:
    """Local worker processes, or Ray actors on the cluster at `--ray-address`."""
    if settings.executor == "ray":
        return RayExecutor(
            address=settings.ray_address,
            data_dir=settings.data_dir,
            log_dir=settings.data_dir / "logs",
            env=env,
            num_cpus=settings.ray_num_cpus,
            num_gpus=settings.ray_num_gpus,
            memory_bytes=settings.ray_memory_bytes,
            placement=settings.ray_placement_strategy,
        )
    return LocalExecutor(data_dir=settings.data_dir, log_dir=settings.data_dir / "logs", env=env)


def _internal_judge_key(settings: Settings, store: Store) -> str:
    """A key this server's judge graders use to call its own models (project `_judges`,
    which sees base models only); kept in the data folder so it survives restarts."""
    path = settings.data_dir / "internal_judge.key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    key = "sk-openrft-judge-" + path.read_text().strip()
    store.keys.register("_judges", key, name="internal judge")
    return key


def _grader_check(grading: GradingService):  # noqa: ANN202 - (config, param) -> None
    """Validate a grader at job creation (a python grader also needs a working sandbox),
    so a bad grader is a 400, never a failed job. Runs in FastAPI's worker thread."""

    def check(config: dict, param: str) -> None:
        anyio.from_thread.run(functools.partial(grading.validate, config, param=param))

    return check
