"""Servers for the API tests.

`server` and `fresh_server` run on each store backend, SQLite and PostgreSQL: the tests
of files, keys, models, metrics and restarts are the store's behaviour seen through the
API. `serving_server`, shared by the serving tests (`serving/`) and the export tests,
has the tiny model registered and small batch and queue bounds (16 rows, 2 waiting
requests) so the queue-bound and disconnect tests can fill them with a few requests;
serving reads the store once per model, so it stays on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support import SMALL_UPLOAD_LIMITS, Server, tiny_model_server
from support.postgres import BACKENDS, database_env


@pytest.fixture(scope="session", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server per backend for the session, with small upload limits."""
    data_dir = tmp_path_factory.mktemp(f"server-{request.param}")
    srv = Server(data_dir, env={**SMALL_UPLOAD_LIMITS, **database_env(request, request.param)})
    yield srv.start()
    srv.stop()


@pytest.fixture(params=BACKENDS)
def fresh_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """A server of its own on each backend, for tests that stop, kill or restart it."""
    srv = Server(tmp_path / "data", env=database_env(request, request.param))
    srv.data_dir.mkdir()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def serving_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "OPENRFT_MAX_BATCH_SIZE": "16",
        "OPENRFT_MAX_QUEUED_REQUESTS": "2",
        "OPENRFT_SCHEDULER_INTERVAL_S": "0.2",
    }
    with tiny_model_server(tmp_path_factory.mktemp("serving"), env=env) as srv:
        yield srv
