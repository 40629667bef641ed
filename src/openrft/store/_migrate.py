"""Schema migrations with Alembic, applied programmatically at start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from openrft.store._db import Database

__all__ = ["is_current", "upgrade"]

_SCRIPTS = Path(__file__).parent / "migrations"
# Any constant both replicas agree on: the key of PostgreSQL's advisory lock on migrations.
_MIGRATION_LOCK = 0x6F70656E726674  # "openrft"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    return cfg


def upgrade(db: Database) -> None:
    cfg = _config()
    with db.engine.begin() as connection:
        if db.dialect == "postgresql":
            # Replicas starting together would each create the tables; the lock (held to
            # the end of this transaction, which holds the whole migration, DDL included)
            # lets one migrate while the others wait and then find the schema current.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def is_current(db: Database) -> bool:
    """Whether the database is at the newest revision (for readiness checks).

    Asked on a connection of its own, not one from the pool: a pooled SQLite connection
    answers from its page cache after the file underneath has gone bad, and a pooled
    server connection says nothing about whether a new one can be opened."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    probe = create_engine(db.url, poolclass=NullPool)
    try:
        with probe.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision() == head
    finally:
        probe.dispose()
