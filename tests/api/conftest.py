"""A server with the tiny model registered, shared by the serving tests.

Small batch and queue bounds (16 rows, 2 waiting requests) so the queue-bound and
disconnect tests can fill them with a few requests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support import Server, run_cli


@pytest.fixture(scope="session")
def serving_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("serving")
    run_cli("models", "init", "tiny", data_dir=data_dir)
    srv = Server(
        data_dir,
        env={
            "OPENRFT_MAX_BATCH_SIZE": "16",
            "OPENRFT_MAX_QUEUED_REQUESTS": "2",
            "OPENRFT_SCHEDULER_INTERVAL_S": "0.2",
        },
    ).start()
    yield srv
    srv.stop()
