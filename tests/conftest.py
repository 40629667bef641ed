"""Fixtures: a real `openrft serve` process on a loopback port, driven by the openai SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from support import SMALL_UPLOAD_LIMITS, Server
from support.postgres import PostgresCluster, find_bin_dir


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the session; small upload limits so the limit tests stay fast."""
    data_dir = tmp_path_factory.mktemp("server")
    srv = Server(data_dir, env=SMALL_UPLOAD_LIMITS).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster for the session, started only when a test asks for it."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
    pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")
    cluster = PostgresCluster(bin_dir=bin_dir).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def client(server: Server) -> openai.OpenAI:
    return server.client()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    """A server of its own, for tests that stop, kill or restart it."""
    srv = Server(tmp_path / "data")
    srv.data_dir.mkdir()
    yield srv
    srv.stop()
