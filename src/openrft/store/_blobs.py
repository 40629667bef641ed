"""Blob storage in a local folder, with atomic writes (temp file, fsync, rename).

A blob is never visible under its key until it is complete; an interrupted write
leaves only a file under `tmp/`, which `recover()` removes at start. Several servers may
share the folder (one machine, one PostgreSQL): each write in progress holds an flock,
which dies with its process, so `recover()` removes only what no live process writes.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from openrft.store._blob_store import BlobStat

__all__ = ["BlobWriter", "LocalBlobStore"]


def _abandoned(lock_path: Path) -> bool:
    """Whether the write that `lock_path` guards has no live process behind it: the file
    is gone, or its flock (which dies with its holder) can be taken."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _size(path: Path) -> int:
    try:
        return path.stat().st_size if path.is_file() else 0
    except FileNotFoundError:  # deleted while we walked (a pruned checkpoint)
        return 0


class BlobWriter:
    """An open temp file that becomes the blob `key` on `commit()`, or vanishes on `abort()`."""

    def __init__(self, store: LocalBlobStore, key: str) -> None:
        self._store = store
        self.key = key
        self._tmp = store.root / "tmp" / f"{uuid.uuid4().hex}.part"
        self._tmp.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = self._tmp.open("wb")
        # Held until commit or abort: `recover()` in another server leaves this file alone.
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
        self.size = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self.size += len(data)

    def commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        final = self._store.path(self.key)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, final)
        self._file.close()  # after the rename: the lock guards the temp file to the end

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
        tmp.parent.mkdir(parents=True, exist_ok=True)
        guard = tmp.with_name(tmp.name + ".lock")  # a folder cannot be flocked; its guard can
        fd = os.open(guard, os.O_CREAT | os.O_RDONLY, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            shutil.copytree(source, tmp)
            final = self.path(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            guard.unlink(missing_ok=True)
            os.close(fd)

    def delete(self, key: str) -> None:
        p = self.path(key)
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)

    def size(self, key: str) -> int:
        """Bytes under `key`: a file's size, or the sum over a folder's files; 0 if absent."""
        found = self.stat(key)
        return found.size if found is not None else 0

    def stat(self, key: str) -> BlobStat | None:
        """Size and newest mtime (the folder's own, or any file's in it) in one walk."""
        p = self.path(key)
        try:
            newest = p.lstat().st_mtime
        except FileNotFoundError:
            return None
        if not p.is_dir():
            return BlobStat(size=_size(p), modified=newest)
        size = 0
        for child in p.rglob("*"):
            try:
                newest = max(newest, child.lstat().st_mtime)
            except FileNotFoundError:  # deleted while we walked
                continue
            size += _size(child)
        return BlobStat(size=size, modified=newest)

    def keys(self, prefix: str) -> list[str]:
        base = self.path(prefix)
        if not base.is_dir():  # absent, or one blob: nothing below it
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.iterdir())

    def recover(self) -> None:
        """Drop what interrupted writes left behind, sparing writes still in progress."""
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        for entry in tmp.iterdir():
            if entry.suffix == ".lock":
                continue  # removed with its folder, or by its writer; `openrft gc` if neither
            if entry.is_dir():
                guard = entry.with_name(entry.name + ".lock")
                if _abandoned(guard):
                    shutil.rmtree(entry, ignore_errors=True)
                    guard.unlink(missing_ok=True)
            elif _abandoned(entry):
                entry.unlink(missing_ok=True)

    # -- the rest of the `BlobStore` protocol (store/_blob_store.py) ----------------------
    def local_dir(self, key: str) -> Path:
        """Files written here by a process are part of the blob folder itself."""
        return self.path(key)

    def iter_bytes(self, key: str) -> Iterator[bytes]:
        with self.path(key).open("rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk

    def modified(self, key: str) -> float | None:
        found = self.stat(key)
        return found.modified if found is not None else None

    def ready(self) -> bool:
        return self.root.is_dir() and os.access(self.root, os.W_OK)
