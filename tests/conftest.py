"""Fixtures: a real `openrft serve` process on a loopback port, driven by the openai SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from support import Server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the session; small upload limits so the limit tests stay fast."""
    data_dir = tmp_path_factory.mktemp("server")
    srv = Server(
        data_dir,
        env={"OPENRFT_MAX_UPLOAD_BYTES": str(4 * 1024 * 1024), "OPENRFT_MAX_LINE_BYTES": "65536"},
    ).start()
    yield srv
    srv.stop()


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
