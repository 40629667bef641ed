"""Loopback servers for the graders tests: real HTTP, not mocks.

A `Loopback` server is the *external* endpoint (a reward Lambda, a judge
model); the graders under test talk to it over TCP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Handler = Callable[[Any, dict[str, str]], tuple[int, Any]]


class Loopback:
    """An HTTP server in a thread; `handle(body, headers) -> (status, json)` answers POSTs."""

    def __init__(self, handle: Handler) -> None:
        self.requests: list[Any] = []
        self.headers: list[dict[str, str]] = []
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append(body)
                outer.headers.append(headers)
                status, reply = handle(body, headers)
                data = json.dumps(reply).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (a timeout test)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def loopback() -> Any:
    servers: list[Loopback] = []

    def start(handle: Handler) -> Loopback:
        servers.append(Loopback(handle))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)
