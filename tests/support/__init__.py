"""Test support: a real `openrft serve` process on a loopback port, driven by the openai SDK."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai

from openrft.store import ModelRow, Store

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"


# The session servers' upload limits: small, so the limit tests stay fast.
SMALL_UPLOAD_LIMITS = {
    "OPENRFT_MAX_UPLOAD_BYTES": str(4 * 1024 * 1024),
    "OPENRFT_MAX_LINE_BYTES": "65536",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(
    proc: subprocess.Popen[bytes],
    url: str,
    *,
    log_path: Path,
    what: str,
    timeout: float,
    ready: Callable[[httpx.Response], bool] = lambda _: True,
) -> None:
    """Poll `url` until its answer is `ready`; fail at once, with its log, if `proc` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log_path.read_text()}")
        try:
            if ready(httpx.get(url, timeout=1)):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start")


def stop_group(proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float) -> None:
    """Send `sig` to `proc`'s process group (started with `start_new_session`) and wait;
    SIGKILL the group if it outlives `timeout`."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# The database of each data folder a `Server` was given one for (`OPENRFT_DATABASE_URL`),
# so admin commands on that folder (`run_cli`) reach the server's database, not SQLite.
_DATABASES: dict[Path, str] = {}


def run_cli(*args: str, data_dir: Path, env: dict[str, str] | None = None) -> str:
    database = _DATABASES.get(Path(data_dir).resolve())
    out = subprocess.run(
        [sys.executable, "-m", "openrft.cli", *args, "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            **({"OPENRFT_DATABASE_URL": database} if database else {}),
            **(env or {}),
        },
    )
    return out.stdout.strip()


class Server:
    """`openrft serve` in its own process group, so stopping it stops its children too."""

    def __init__(
        self, data_dir: Path, *, api_key: str = "sk-test-default", env: dict | None = None
    ):
        self.data_dir = data_dir
        self.api_key = api_key
        self.env = env or {}
        if "OPENRFT_DATABASE_URL" in self.env:
            _DATABASES[data_dir.resolve()] = self.env["OPENRFT_DATABASE_URL"]
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> Server:
        env = {**os.environ, "OPENRFT_API_KEY": self.api_key, **self.env}
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "openrft.cli",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        wait_until_up(
            self.proc,
            f"{self.root_url}/healthz",
            log_path=self.data_dir / "server.log",
            what="server",
            timeout=timeout,
            ready=lambda response: response.status_code == 200,
        )
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc:
            stop_group(self.proc, sig=sig, timeout=30)
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def client(self, api_key: str | None = None, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.base_url, api_key=api_key or self.api_key, max_retries=0, **kwargs
        )

    def open_store(self) -> Store:
        """The server's own store (database and blobs), for a test to write to directly."""
        url = self.env.get("OPENRFT_DATABASE_URL", f"sqlite:///{self.data_dir / 'openrft.db'}")
        return Store.open(database_url=url, blob_dir=self.data_dir / "blobs")

    def new_key(self, project: str) -> str:
        return run_cli("keys", "create", "--project", project, data_dir=self.data_dir)


@contextmanager
def tiny_model_server(data_dir: Path, *, env: dict[str, str] | None = None) -> Iterator[Server]:
    """A started server on `data_dir` with the tiny model `tiny` registered; stopped on exit.
    Module- and session-scoped fixtures yield from it with their own `env`."""
    server = Server(data_dir, env=env)  # first: `run_cli` then reaches its database
    run_cli("models", "init", "tiny", data_dir=data_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def add_adapter_model(store: Store, model_id: str, *, source: str, parent: str | None) -> None:
    """Register a LoRA adapter of `tiny` (blob `source`), trained on `parent` if given."""
    store.models.add(
        ModelRow(
            id=model_id,
            project="default",
            kind="fine-tuned",
            created_at=int(time.time()),
            owned_by="default",
            source=source,
            base_model="tiny",
            weights_format="adapter",
            details={"parent": parent},
        )
    )
