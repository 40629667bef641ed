"""`LocalBlobStore.stat`: a key's bytes and newest change from one walk of its folder."""

from __future__ import annotations

import os
import time
from pathlib import Path

from openrft.store import LocalBlobStore
from support.blobs import file_and_folder


def test_stat_sums_a_folder_and_finds_its_newest_change(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    file_and_folder(blobs, tmp_path, file="files/file-a", folder="jobs/ftjob-1/ckpt-step-2")

    folder = blobs.path("jobs/ftjob-1")
    old = int(time.time()) - 3600
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (old, old))
    os.utime(folder / "ckpt-step-2" / "model" / "weights", (old + 60, old + 60))

    found = blobs.stat("jobs/ftjob-1")
    assert found is not None
    assert (found.size, found.modified) == (10, old + 60)  # files only; the deepest is newest
    assert (blobs.size("jobs/ftjob-1"), blobs.modified("jobs/ftjob-1")) == tuple(found)
    one = blobs.stat("files/file-a")
    assert one is not None and one.size == 5 and one.modified >= old
    assert blobs.stat("jobs/ftjob-nope") is None
    assert (blobs.size("jobs/ftjob-nope"), blobs.modified("jobs/ftjob-nope")) == (0, None)
