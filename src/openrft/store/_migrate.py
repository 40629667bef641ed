"""Schema migrations with Alembic, applied programmatically at start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from openrft.store._db import Database

__all__ = ["is_current", "upgrade"]

_SCRIPTS = Path(__file__).parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    return cfg


def upgrade(db: Database) -> None:
    cfg = _config()
    with db.engine.begin() as connection:
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
