"""State: SQLAlchemy tables and migrations, the blob store, repositories."""

from openrft.store._blobs import BlobWriter, LocalBlobStore
from openrft.store._db import Database
from openrft.store._ids import new_id, now
from openrft.store._jobs import TERMINAL
from openrft.store._pages import Page
from openrft.store._store import Store
from openrft.store._tables import (
    ApiKeyRow,
    CheckpointRow,
    FileRow,
    JobEventRow,
    JobRow,
    ModelRow,
    RolloutRow,
)

__all__ = [
    "TERMINAL",
    "ApiKeyRow",
    "CheckpointRow",
    "JobEventRow",
    "JobRow",
    "BlobWriter",
    "Database",
    "FileRow",
    "LocalBlobStore",
    "ModelRow",
    "Page",
    "RolloutRow",
    "Store",
    "new_id",
    "now",
]
