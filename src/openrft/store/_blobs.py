"""Blob storage in a local folder, with atomic writes (temp file, fsync, rename).

A blob is never visible under its key until it is complete; an interrupted write
leaves only a file under `tmp/`, which `recover()` removes at start.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import BinaryIO

__all__ = ["BlobWriter", "LocalBlobStore"]


class BlobWriter:
    """An open temp file that becomes the blob `key` on `commit()`, or vanishes on `abort()`."""

    def __init__(self, store: LocalBlobStore, key: str) -> None:
        self._store = store
        self.key = key
        self._tmp = store.root / "tmp" / f"{uuid.uuid4().hex}.part"
        self._tmp.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = self._tmp.open("wb")
        self.size = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self.size += len(data)

    def commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        final = self._store.path(self.key)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, final)

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        if ".." in key.split("/") or key.startswith("/"):
            raise ValueError(f"invalid blob key {key!r}")
        return self.root / key

    def writer(self, key: str) -> BlobWriter:
        return BlobWriter(self, key)

    def put_dir(self, key: str, source: Path) -> None:
        """Copy a folder (a checkpoint, an adapter) in whole, then rename it into place."""
        tmp = self.root / "tmp" / f"{uuid.uuid4().hex}.dir"
        shutil.copytree(source, tmp)
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)

    def delete(self, key: str) -> None:
        p = self.path(key)
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)

    def keys(self, prefix: str) -> list[str]:
        base = self.path(prefix)
        if not base.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.iterdir())

    def recover(self) -> None:
        """Drop what interrupted writes left behind."""
        shutil.rmtree(self.root / "tmp", ignore_errors=True)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
