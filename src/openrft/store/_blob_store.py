"""`BlobStore`: what the rest of openrft may ask of blob storage, local folder or S3.

Keys are `/`-separated paths (`files/<id>`, `jobs/<job>/ckpt-step-N/model`). A key
names either one blob (a file) or a folder of blobs (a checkpoint, an adapter).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple, Protocol

__all__ = ["BlobStat", "BlobStore", "BlobUpload", "check_key"]


def check_key(key: str) -> str:
    if not key or ".." in key.split("/") or key.startswith("/"):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class BlobStat(NamedTuple):
    """A key's bytes and age, from one walk of a folder (or one HEAD or LIST on S3)."""

    size: int  # a blob's bytes, or the sum over a folder's files
    modified: float  # the newest modification time under the key, epoch seconds


class BlobUpload(Protocol):
    """A blob being written: invisible under `key` until `commit()`; `abort()` drops it."""

    key: str
    size: int

    def write(self, data: bytes) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class BlobStore(Protocol):
    def writer(self, key: str) -> BlobUpload: ...

    def put_dir(self, key: str, source: Path) -> None:
        """Store every file of the folder `source` under `key`, replacing what was there."""
        ...

    def delete(self, key: str) -> None:
        """Remove the blob `key`, or everything under it; absent keys are no error."""
        ...

    def size(self, key: str) -> int:
        """`stat(key).size`, or 0 if the key is absent."""
        ...

    def stat(self, key: str) -> BlobStat | None:
        """Bytes under `key` and its newest modification time; None if absent."""
        ...

    def keys(self, prefix: str) -> list[str]:
        """The keys one level below `prefix` (blobs and folders), sorted."""
        ...

    def path(self, key: str) -> Path:
        """A local path holding `key` (a file or a folder), for readers that need files
        on disk (`from_pretrained`); it may not exist if the key does not."""
        ...

    def local_dir(self, key: str) -> Path:
        """A local folder for files a process writes beside `key` (TensorBoard, W&B);
        the blob folder itself when local, a local folder not uploaded when remote."""
        ...

    def iter_bytes(self, key: str) -> Iterator[bytes]:
        """The bytes of the blob `key` in chunks, without first copying it to disk."""
        ...

    def modified(self, key: str) -> float | None:
        """`stat(key).modified`: the newest modification time under `key`; None if absent."""
        ...

    def ready(self) -> bool:
        """Reachable and writable (for `/readyz`)."""
        ...

    def recover(self) -> None:
        """Drop what interrupted writes left behind (at server start)."""
        ...
