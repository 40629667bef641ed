"""State: SQLAlchemy tables and migrations, the blob store, repositories."""

from openrft.store._blobs import BlobWriter, LocalBlobStore
from openrft.store._db import Database
from openrft.store._ids import new_id, now
from openrft.store._pages import Page
from openrft.store._store import Store
from openrft.store._tables import ApiKeyRow, FileRow, ModelRow

__all__ = [
    "ApiKeyRow",
    "BlobWriter",
    "Database",
    "FileRow",
    "LocalBlobStore",
    "ModelRow",
    "Page",
    "Store",
    "new_id",
    "now",
]
