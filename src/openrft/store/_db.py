"""Database engine and sessions: SQLite (WAL) by default, PostgreSQL (or any SQLAlchemy
URL) otherwise. Several servers may share one PostgreSQL; SQLite is one machine's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from openrft.errors import InvalidRequest, Unavailable

__all__ = ["Database"]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while a worker process writes events; FULL sync makes a
    # committed row survive a crash of the machine, not only of the process.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Database:
    """Owns the SQLAlchemy engine; `session()` is a transaction that commits on success."""

    def __init__(self, url: str) -> None:
        self.url = url
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            # A database server restarts and drops idle connections; a pooled connection is
            # checked before use instead of failing the request that draws it.
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql` (the branches the store takes), or another backend's name."""
        return self.engine.dialect.name

    @property
    def shared(self) -> bool:
        """Whether other servers may use this database at once (anything but SQLite)."""
        return self.dialect != "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                yield session
        except OperationalError as exc:
            raise Unavailable(f"The database is unavailable: {exc.orig}") from exc
        except DataError as exc:
            # PostgreSQL refuses what SQLite stores silently: a string past its column's
            # length, a NUL character in text. The caller sent it, so it is a 400.
            reason = str(exc.orig).splitlines()[0]
            raise InvalidRequest(f"A value cannot be stored: {reason}") from exc

    def dispose(self) -> None:
        self.engine.dispose()
