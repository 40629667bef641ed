"""`Store`: the database, the blob store and the repositories over them, opened once."""

from __future__ import annotations

import os
from pathlib import Path

from openrft.store._blobs import LocalBlobStore
from openrft.store._db import Database
from openrft.store._files import FileRepository
from openrft.store._jobs import JobRepository
from openrft.store._keys import KeyRepository
from openrft.store._migrate import is_current, upgrade
from openrft.store._models import ModelRepository

__all__ = ["Store"]


class Store:
    def __init__(self, *, database_url: str, blob_dir: Path) -> None:
        if database_url.startswith("sqlite:///"):
            Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.db = Database(database_url)
        self.blobs = LocalBlobStore(blob_dir)
        self.files = FileRepository(self.db, self.blobs)
        self.keys = KeyRepository(self.db)
        self.models = ModelRepository(self.db)
        self.jobs = JobRepository(self.db)

    @classmethod
    def open(cls, *, database_url: str, blob_dir: Path, recover: bool = False) -> Store:
        """Open and migrate; with `recover`, also clean what a crash left behind (server start)."""
        store = cls(database_url=database_url, blob_dir=blob_dir)
        upgrade(store.db)
        if recover:
            store.blobs.recover()
            store.files.sweep_orphans()
        return store

    def readiness(self) -> dict[str, bool]:
        """What `/readyz` reports: the database answers at the newest migration, and the
        blob folder is there and writable."""
        try:
            database = is_current(self.db)
        except Exception:  # any failure to reach or read the database means unready
            database = False
        root = self.blobs.root
        blobs = root.is_dir() and os.access(root, os.W_OK)
        return {"database": database, "blob_store": blobs}

    def close(self) -> None:
        self.db.dispose()
