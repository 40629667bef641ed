"""A throwaway PostgreSQL cluster for the tests: `initdb` into a temp folder, `pg_ctl start`
on a free loopback port, a fresh database per server, `pg_ctl stop` at the end.

PostgreSQL refuses to run as root, and CI runs as root: there the cluster belongs to the
`postgres` system user that Debian's package creates, and its commands run through
`runuser`. Elsewhere it runs as whoever runs the tests.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from support import free_port

__all__ = ["BACKENDS", "PostgresCluster", "database_env", "find_bin_dir"]

# The store backends a parametrized server fixture runs on.
BACKENDS = ["sqlite", "postgresql"]


def find_bin_dir() -> Path | None:
    """The folder holding `initdb` and `pg_ctl`: on PATH, or Debian's versioned folder."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: p.split("/")[4])
    return Path(found[-1]).parent if found else None


class PostgresCluster:
    """Parameters: `bin_dir` (where `initdb` and `pg_ctl` are)."""

    def __init__(self, *, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        # Not under pytest's tmp folder: that one is private to root, and the server runs
        # as `postgres`. The socket folder stays short (a unix socket path has ~100 bytes).
        self.root = Path(tempfile.mkdtemp(prefix="openrft-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self.user = "postgres" if self._as_postgres else pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.root)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed: {done.stdout}{done.stderr}{log}")

    def start(self) -> PostgresCluster:
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8")
        # Loopback only, trust auth, and no fsync: a test cluster lives for one session and
        # nothing in it must survive a crash of the machine.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=300"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "start")  # fmt: skip
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "openrft") -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def database_env(request: pytest.FixtureRequest, backend: str) -> dict[str, str]:
    """The server environment for `backend`: nothing for SQLite (the data folder's own
    file), a new database in the session's cluster for PostgreSQL."""
    if backend == "sqlite":
        return {}
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return {"OPENRFT_DATABASE_URL": cluster.create_database()}
