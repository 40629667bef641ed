"""`ObjectBlobStore` against a real S3-compatible server (moto, on loopback)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from openrft.errors import NotFound
from openrft.store import ObjectBlobStore, Store
from support.blobs import file_and_folder
from support.s3 import MotoS3

pytest.importorskip("obstore")

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    srv = MotoS3(tmp_path_factory.mktemp("moto")).start()
    yield srv
    srv.stop()


@pytest.fixture
def blobs(s3: MotoS3, tmp_path: Path, request: pytest.FixtureRequest) -> ObjectBlobStore:
    # A prefix per test, so tests see only their own objects in the shared bucket.
    url = f"s3://{s3.bucket}/{request.node.name}"
    return ObjectBlobStore(
        url, cache_dir=tmp_path / "cache", local_root=tmp_path / "blobs", env=s3.env
    )


def _prefix(request: pytest.FixtureRequest) -> str:
    return request.node.name + "/"


def test_writer_streams_parts_and_is_invisible_until_commit(
    blobs: ObjectBlobStore, s3: MotoS3, request: pytest.FixtureRequest
) -> None:
    data = os.urandom(3 * MIB)
    w = blobs.writer("files/file-big")
    for _ in range(6):  # 18 MiB in all: more than two parts of a multipart upload
        w.write(data)
    # The parts are on the server, but no object: a reader sees nothing half-written.
    assert s3.uploads() == [_prefix(request) + "files/file-big"]
    assert s3.objects(_prefix(request)) == {}
    assert w.size == 18 * MIB
    w.commit()
    assert s3.objects(_prefix(request)) == {_prefix(request) + "files/file-big": 18 * MIB}
    assert s3.uploads() == []
    assert b"".join(blobs.iter_bytes("files/file-big")) == data * 6
    assert blobs.size("files/file-big") == 18 * MIB


def test_aborted_or_uncommitted_writers_leave_no_object(
    blobs: ObjectBlobStore, s3: MotoS3, request: pytest.FixtureRequest
) -> None:
    big = blobs.writer("files/file-aborted")
    big.write(os.urandom(12 * MIB))  # a multipart upload has begun
    big.abort()
    small = blobs.writer("files/file-small-aborted")
    small.write(b"x" * 100)
    small.abort()
    blobs.writer("files/file-never-committed").write(b"half")
    assert s3.objects(_prefix(request)) == {}
    assert _prefix(request) + "files/file-aborted" not in s3.uploads()
    assert blobs.keys("files") == []


def test_small_and_empty_blobs_round_trip(blobs: ObjectBlobStore) -> None:
    for key, data in [("files/a", b'{"x": 1}\n'), ("files/empty", b"")]:
        w = blobs.writer(key)
        w.write(data)
        w.commit()
        assert b"".join(blobs.iter_bytes(key)) == data
        assert blobs.path(key).read_bytes() == data
    assert blobs.keys("files") == ["files/a", "files/empty"]


def test_stat_is_one_head_or_one_list(blobs: ObjectBlobStore, tmp_path: Path) -> None:
    """`stat` gives what `size` and `modified` give, for an object, a folder, and nothing."""
    started = time.time() - 5  # the server's clock may run a little behind ours
    file_and_folder(blobs, tmp_path, file="files/a", folder="jobs/ftjob-2")
    for key, size in [("files/a", 5), ("jobs/ftjob-2", 10), ("jobs/ftjob-2/model", 7)]:
        found = blobs.stat(key)
        assert found is not None and found.size == size == blobs.size(key)
        assert found.modified == blobs.modified(key) and found.modified >= started
    assert blobs.stat("jobs/ftjob-nope") is None


def test_put_dir_and_path_round_trip(
    blobs: ObjectBlobStore, s3: MotoS3, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    src = tmp_path / "ckpt"
    (src / "model").mkdir(parents=True)
    weights = os.urandom(6 * MIB)  # past the multipart threshold
    (src / "model" / "model.safetensors").write_bytes(weights)
    (src / "model" / "config.json").write_text('{"a": 1}')
    (src / "state.pt").write_bytes(b"state")
    blobs.put_dir("jobs/ftjob-1/ckpt-step-2", src)
    base = _prefix(request) + "jobs/ftjob-1/ckpt-step-2/"
    assert s3.objects(base) == {
        base + "model/model.safetensors": 6 * MIB,
        base + "model/config.json": 8,
        base + "state.pt": 5,
    }
    # A whole checkpoint, and a folder inside it, each downloaded into the cache.
    local = blobs.path("jobs/ftjob-1/ckpt-step-2")
    assert (local / "model" / "model.safetensors").read_bytes() == weights
    assert (local / "state.pt").read_bytes() == b"state"
    model = blobs.path("jobs/ftjob-1/ckpt-step-2/model")
    assert sorted(p.name for p in model.iterdir()) == ["config.json", "model.safetensors"]
    assert not (model / "state.pt").exists()
    assert blobs.size("jobs/ftjob-1/ckpt-step-2") == 6 * MIB + 13
    assert blobs.keys("jobs") == ["jobs/ftjob-1"]
    assert blobs.keys("jobs/ftjob-1") == ["jobs/ftjob-1/ckpt-step-2"]
    assert blobs.modified("jobs/ftjob-1") is not None
    assert blobs.modified("jobs/ftjob-nope") is None
    # put_dir again replaces the folder: files gone from the source go from the bucket.
    (src / "state.pt").unlink()
    blobs.put_dir("jobs/ftjob-1/ckpt-step-2", src)
    assert base + "state.pt" not in s3.objects(base)
    # A key with no objects is a path that does not exist, as with a local folder.
    assert not blobs.path("jobs/ftjob-nope/final").exists()


def test_delete_a_prefix_and_its_cached_copy(
    blobs: ObjectBlobStore, s3: MotoS3, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    src = tmp_path / "final"
    src.mkdir()
    (src / "adapter_model.safetensors").write_bytes(b"w" * 100)
    blobs.put_dir("jobs/ftjob-2/final", src)
    blobs.put_dir("jobs/ftjob-2/ckpt-step-1", src)
    blobs.put_dir("jobs/ftjob-22/final", src)  # shares the prefix text, not the folder
    cached = blobs.path("jobs/ftjob-2/final")
    assert cached.is_dir()
    blobs.delete("jobs/ftjob-2")
    assert list(s3.objects(_prefix(request))) == [
        _prefix(request) + "jobs/ftjob-22/final/adapter_model.safetensors"
    ]
    assert not cached.exists()
    assert blobs.keys("jobs") == ["jobs/ftjob-22"]
    blobs.delete("jobs/ftjob-missing")  # absent keys are no error
    with pytest.raises(NotFound):
        b"".join(blobs.iter_bytes("files/file-missing"))


def test_store_selects_the_object_store_by_url(
    s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    store = Store.open(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        blob_dir=tmp_path / "blobs",
        blob_url=f"s3://{s3.bucket}/store-test",
        recover=True,
    )
    assert isinstance(store.blobs, ObjectBlobStore)
    assert store.readiness() == {"database": True, "blob_store": True}
    store.close()
    gone = Store(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        blob_dir=tmp_path / "blobs",
        blob_url="s3://no-such-bucket/x",
    )
    assert gone.readiness()["blob_store"] is False
    gone.close()
