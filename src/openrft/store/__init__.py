"""State: SQLAlchemy tables and migrations, the blob store, repositories."""

from openrft.store._blob_store import BlobStore, BlobUpload
from openrft.store._blobs import BlobWriter, LocalBlobStore
from openrft.store._db import Database
from openrft.store._gc import GcReport, collect_garbage
from openrft.store._ids import new_id, now
from openrft.store._jobs import TERMINAL
from openrft.store._object_blobs import ObjectBlobStore
from openrft.store._pages import Page
from openrft.store._projects import SETTABLE, ProjectLimits
from openrft.store._store import Store
from openrft.store._tables import (
    ApiKeyRow,
    CheckpointRow,
    FileRow,
    JobEventRow,
    JobRow,
    ModelRow,
    ProjectRow,
    RolloutRow,
)

__all__ = [
    "SETTABLE",
    "TERMINAL",
    "ApiKeyRow",
    "CheckpointRow",
    "JobEventRow",
    "JobRow",
    "BlobStore",
    "BlobUpload",
    "BlobWriter",
    "Database",
    "FileRow",
    "GcReport",
    "LocalBlobStore",
    "ModelRow",
    "ObjectBlobStore",
    "Page",
    "ProjectLimits",
    "ProjectRow",
    "RolloutRow",
    "Store",
    "collect_garbage",
    "new_id",
    "now",
]
