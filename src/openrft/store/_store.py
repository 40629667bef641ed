"""`Store`: the database, the blob store and the repositories over them, opened once."""

from __future__ import annotations

from pathlib import Path

from openrft.store._blob_store import BlobStore
from openrft.store._blobs import LocalBlobStore
from openrft.store._db import Database
from openrft.store._files import FileRepository
from openrft.store._jobs import JobRepository
from openrft.store._keys import KeyRepository
from openrft.store._migrate import is_current, upgrade
from openrft.store._models import ModelRepository
from openrft.store._projects import ProjectRepository
from openrft.store._retention import Retention

__all__ = ["Store"]


def _blob_store(blob_dir: Path, blob_url: str | None) -> BlobStore:
    """The local folder `blob_dir`, or the object store at `blob_url` (`s3://...`), whose
    local cache is a sibling of `blob_dir` (DATA_DIR/cache/blobs)."""
    if not blob_url:
        return LocalBlobStore(blob_dir)
    from openrft.store._object_blobs import ObjectBlobStore  # obstore is an optional extra

    return ObjectBlobStore(
        blob_url, cache_dir=blob_dir.parent / "cache" / "blobs", local_root=blob_dir
    )


class Store:
    """Parameters: `database_url`; `blob_dir` (the local blob folder); `blob_url` (an
    `s3://bucket/prefix` to keep blobs in instead; None keeps them in `blob_dir`)."""

    def __init__(self, *, database_url: str, blob_dir: Path, blob_url: str | None = None) -> None:
        if database_url.startswith("sqlite:///"):
            Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.db = Database(database_url)
        self.blobs = _blob_store(blob_dir, blob_url)
        self.files = FileRepository(self.db, self.blobs)
        self.keys = KeyRepository(self.db)
        self.models = ModelRepository(self.db)
        self.jobs = JobRepository(self.db)
        self.projects = ProjectRepository(self.db, self.blobs)
        self.retention = Retention(
            db=self.db,
            blobs=self.blobs,
            files=self.files,
            models=self.models,
            jobs=self.jobs,
            projects=self.projects,
        )

    @classmethod
    def open(
        cls,
        *,
        database_url: str,
        blob_dir: Path,
        blob_url: str | None = None,
        recover: bool = False,
    ) -> Store:
        """Open and migrate; with `recover`, also clean what a crash left behind (server start)."""
        store = cls(database_url=database_url, blob_dir=blob_dir, blob_url=blob_url)
        upgrade(store.db)
        if recover:
            store.blobs.recover()  # spares temp files that a live process still writes
            # With a shared database another server may have renamed an upload into place
            # a moment before writing its row: there `openrft gc`, which spares anything
            # recent, removes true orphans instead.
            if not store.db.shared:
                store.files.sweep_orphans()
        return store

    def readiness(self) -> dict[str, bool]:
        """What `/readyz` reports: the database answers at the newest migration, and the
        blob store is reachable and writable."""
        try:
            database = is_current(self.db)
        except Exception:  # any failure to reach or read the database means unready
            database = False
        return {"database": database, "blob_store": self.blobs.ready()}

    def close(self) -> None:
        self.db.dispose()
