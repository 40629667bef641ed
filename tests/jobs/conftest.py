"""A server with a tiny registered model and short leases, for job tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support import Server, tiny_model_server


@pytest.fixture(scope="module")
def job_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "OPENRFT_LEASE_TTL_S": "4",
        "OPENRFT_HEARTBEAT_S": "0.5",
        "OPENRFT_SCHEDULER_INTERVAL_S": "0.2",
    }
    with tiny_model_server(tmp_path_factory.mktemp("jobs"), env=env) as srv:
        yield srv
