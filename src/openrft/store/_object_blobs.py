"""Blob storage in an S3-compatible object store (`--blob-url s3://bucket/prefix`).

Built on `obstore` (Python bindings of Rust's `object_store`): one wheel with no
Python dependencies, streaming multipart writes, any S3-compatible endpoint. We
chose it over `s3fs`, whose `aiobotocore` pins `botocore` to a window of a few
patch releases (3.10 wants >=1.43.115,<1.43.118) and so fights the `boto3` that the
`aws`/`test` extras install, and pulls aiohttp and six more packages besides.

Nothing half-written becomes visible:
- `writer(key)` streams parts of a multipart upload; the object exists only once
  `commit()` completes the upload, and `abort()` aborts it.
- `put_dir` uploads a folder file by file, each file atomically. A folder is
  visible piecewise while it uploads, but nothing reads it before the database row
  naming it is written, and that happens only after `put_dir` returns.

Readers that need files on disk (`from_pretrained`, resuming a checkpoint) get them
through `path(key)`, which downloads the key into a local cache once (into a temp
folder, then renamed into place). Keys are written once and never changed in place,
so a cached copy never goes stale; `delete` drops this process's copy.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlparse

from openrft.errors import NotFound, Unavailable
from openrft.store._blob_store import BlobStat, check_key

if TYPE_CHECKING:
    from obstore import WritableFile
    from obstore.store import S3Store

__all__ = ["ObjectBlobStore", "ObjectBlobWriter"]

log = logging.getLogger("openrft.store")

# Parts of a streamed upload: S3's minimum part is 5 MiB; each part is held in memory.
_PART_BYTES = 8 * 1024 * 1024
_READ_CHUNK = 1024 * 1024


def _remove(path: Path) -> None:
    """Remove a cached file or folder, if there."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class _AbortUpload(Exception):
    """Passed to the writer's `__exit__`: leaving with an error aborts the upload."""


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Map obstore's errors into openrft's at the one place they enter."""
    from obstore.exceptions import BaseError

    try:
        yield
    except FileNotFoundError as exc:  # obstore raises the builtin for a missing object
        raise NotFound(f"No such blob: {what}") from exc
    except BaseError as exc:
        raise Unavailable(f"The blob store failed on {what}: {exc}") from exc


def _s3_store(url: str, env: os._Environ[str] | dict[str, str]) -> S3Store:
    """An `S3Store` for `s3://bucket/prefix`, configured from the usual AWS variables."""
    try:
        from obstore.store import S3Store
    except ImportError as exc:  # an optional extra
        raise RuntimeError(
            "blob_url needs the `obstore` package: pip install 'openrft[s3]'"
        ) from exc
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"blob_url must look like s3://bucket/prefix, got {url!r}")
    config: dict[str, Any] = {}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        config["endpoint"] = endpoint
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        config["region"] = region
    for name, variable in [
        ("access_key_id", "AWS_ACCESS_KEY_ID"),
        ("secret_access_key", "AWS_SECRET_ACCESS_KEY"),
        ("session_token", "AWS_SESSION_TOKEN"),
    ]:
        if env.get(variable):
            config[name] = env[variable]
    # Without keys, obstore tries the rest of AWS's chain (web identity, instance roles).
    return S3Store(
        parsed.netloc,
        prefix=parsed.path.strip("/") or None,
        config=config,  # type: ignore[arg-type]
        # Plain http only where the endpoint says so (a loopback MinIO or moto).
        client_options={"allow_http": bool(endpoint and endpoint.startswith("http://"))},
    )


class ObjectBlobWriter:
    """A multipart upload that becomes the object `key` on `commit()`, or is aborted."""

    def __init__(self, store: S3Store, key: str) -> None:
        import obstore

        self.key = key
        self.size = 0
        with _translated(key):
            self._file: WritableFile = obstore.open_writer(store, key, buffer_size=_PART_BYTES)
        self._done = False

    def write(self, data: bytes) -> None:
        with _translated(self.key):
            self._file.write(data)
        self.size += len(data)

    def commit(self) -> None:
        try:
            with _translated(self.key):
                self._file.close()  # completes the multipart upload (or puts a small one)
        except BaseException:
            self.abort()
            raise
        self._done = True

    def abort(self) -> None:
        """Best effort: an upload that cannot be aborted now stays invisible, and the
        bucket's lifecycle rule for incomplete multipart uploads removes its parts."""
        if self._done:
            return
        self._done = True
        try:
            self._file.__exit__(_AbortUpload, _AbortUpload(), None)
        except Exception:  # already closed by a failed commit, or the store unreachable
            log.warning("could not abort the upload of %s", self.key, exc_info=True)


class ObjectBlobStore:
    """Parameters: `url` (`s3://bucket/prefix`); `cache_dir` (where `path()` downloads
    to, e.g. DATA_DIR/cache/blobs); `local_root` (where `local_dir()` folders go, e.g.
    DATA_DIR/blobs); `env` (the AWS variables; os.environ by default)."""

    def __init__(
        self,
        url: str,
        *,
        cache_dir: Path,
        local_root: Path,
        env: os._Environ[str] | dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.cache_dir = cache_dir
        self.local_root = local_root
        self._store = _s3_store(url, os.environ if env is None else env)
        self._download = threading.Lock()  # one download per process at a time
        cache_dir.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"ObjectBlobStore({self.url!r})"

    # -- writing ----------------------------------------------------------------------
    def writer(self, key: str) -> ObjectBlobWriter:
        return ObjectBlobWriter(self._store, check_key(key))

    def put_dir(self, key: str, source: Path) -> None:
        """Upload every file of `source` under `key`, then drop objects of an older
        folder under the same key. Not atomic as a whole: the folder is referenced only
        by a database row written after this returns, so no reader sees it half done."""
        import obstore

        check_key(key)
        written: set[str] = set()
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            name = f"{key}/{file.relative_to(source).as_posix()}"
            with _translated(name):
                obstore.put(self._store, name, file)  # multipart past 5 MiB, atomic
            written.add(name)
        stale = [k for k in self._objects_under(key) if k not in written]
        if stale:
            with _translated(key):
                obstore.delete(self._store, stale)

    def delete(self, key: str) -> None:
        import obstore

        check_key(key)
        with _translated(key):
            obstore.delete(self._store, [key, *self._objects_under(key)])
        self._drop_cached(key)

    # -- reading ----------------------------------------------------------------------
    def _head(self, key: str) -> dict[str, Any] | None:
        import obstore

        with _translated(key):
            try:
                return dict(obstore.head(self._store, key))
            except FileNotFoundError:
                return None

    def _list(self, key: str) -> list[dict[str, Any]]:
        """Every object strictly below the folder `key`."""
        import obstore

        with _translated(key):
            return [dict(meta) for batch in obstore.list(self._store, key + "/") for meta in batch]

    def _objects_under(self, key: str) -> list[str]:
        return [meta["path"] for meta in self._list(key)]

    def size(self, key: str) -> int:
        """Bytes under `key`: an object's size, or the sum over a folder's; 0 if absent."""
        found = self.stat(key)
        return found.size if found is not None else 0

    def stat(self, key: str) -> BlobStat | None:
        """One HEAD for an object, or one LIST for a folder; None if neither exists."""
        check_key(key)
        head = self._head(key)
        metas = [head] if head is not None else self._list(key)
        if not metas:
            return None
        return BlobStat(
            size=sum(int(m["size"]) for m in metas),
            modified=max(m["last_modified"].timestamp() for m in metas),
        )

    def keys(self, prefix: str) -> list[str]:
        import obstore

        check_key(prefix)
        with _translated(prefix):
            found = obstore.list_with_delimiter(self._store, prefix + "/")
        names = [p.rstrip("/") for p in found["common_prefixes"]]
        names += [meta["path"] for meta in found["objects"]]
        return sorted(names)

    def modified(self, key: str) -> float | None:
        found = self.stat(key)
        return found.modified if found is not None else None

    def iter_bytes(self, key: str) -> Iterator[bytes]:
        """Asks for the object at once, so a missing one raises `NotFound` here, before a
        caller has begun a response; the body then arrives as it is iterated."""
        import obstore

        check_key(key)
        with _translated(key):
            result = obstore.get(self._store, key)
        return self._chunks(key, result.stream(min_chunk_size=_READ_CHUNK))

    @staticmethod
    def _chunks(key: str, stream: Iterator[Any]) -> Iterator[bytes]:
        with _translated(key):
            for chunk in stream:
                yield bytes(chunk)

    # -- the local cache --------------------------------------------------------------
    def _cached(self, key: str) -> Path:
        # One flat entry per key: a cached `a/b/model` never passes for a complete `a/b`.
        return self.cache_dir / quote(key, safe="")

    def _drop_cached(self, key: str) -> None:
        for entry in self.cache_dir.iterdir():
            name = unquote(entry.name)
            if name == key or name.startswith(key + "/"):
                _remove(entry)

    def path(self, key: str) -> Path:
        """Download `key` (an object, or every object of a folder) into the cache once,
        and return the cached copy; a key with no objects gives a path that does not exist."""
        check_key(key)
        final = self._cached(key)
        if final.exists():
            return final
        with self._download:
            if final.exists():  # another thread fetched it meanwhile
                return final
            tmp = self.cache_dir / ".tmp" / uuid.uuid4().hex
            tmp.parent.mkdir(parents=True, exist_ok=True)
            try:
                if self._fetch(key, tmp):
                    os.replace(tmp, final)
            except OSError:
                if not final.exists():  # not another process winning the rename
                    raise
            finally:
                _remove(tmp)
        return final

    def _fetch(self, key: str, tmp: Path) -> bool:
        """Download `key` to `tmp` (a file or a folder); False when there is nothing."""
        if self._head(key) is not None:
            self._download_to(key, tmp)
            return True
        names = self._objects_under(key)
        for name in names:
            target = tmp / name.removeprefix(key + "/")
            target.parent.mkdir(parents=True, exist_ok=True)
            self._download_to(name, target)
        return bool(names)

    def _download_to(self, key: str, target: Path) -> None:
        with target.open("wb") as f:
            for chunk in self.iter_bytes(key):
                f.write(chunk)

    def local_dir(self, key: str) -> Path:
        """A local folder for files written beside `key`; these are not uploaded."""
        check_key(key)
        return self.local_root / key

    # -- health -----------------------------------------------------------------------
    def ready(self) -> bool:
        """One cheap list request on the bucket (and prefix)."""
        import obstore
        from obstore.exceptions import BaseError

        try:
            obstore.list_with_delimiter(self._store, None)
        except BaseError:
            return False
        return True

    def recover(self) -> None:
        """Nothing to clean remotely (uploads are atomic); drop the cache's temp files."""
        shutil.rmtree(self.cache_dir / ".tmp", ignore_errors=True)
