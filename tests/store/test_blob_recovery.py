"""Start-time recovery of the local blob folder when several servers share it: what a
dead process left is removed, what a live one is writing is not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from openrft.store import LocalBlobStore

# A process that opens a blob writer, writes, and dies without committing (SIGKILL-like).
_DIES_MID_WRITE = """
import os, sys
from pathlib import Path
from openrft.store import LocalBlobStore
writer = LocalBlobStore(Path(sys.argv[1])).writer("files/file-dead")
writer.write(b"half")
writer._file.flush()
os._exit(9)
"""


def test_recover_spares_live_writes_and_drops_dead_ones(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    subprocess.run([sys.executable, "-c", _DIES_MID_WRITE, str(tmp_path)], check=False)
    (dead,) = (tmp_path / "tmp").iterdir()
    (tmp_path / "tmp" / "old.dir").mkdir()  # a folder copy whose process died

    live = blobs.writer("files/file-live")  # another server's upload, in progress
    live.write(b"whole")
    blobs.recover()  # a second server starts on the same folder
    remaining = list((tmp_path / "tmp").iterdir())
    assert not dead.exists() and not (tmp_path / "tmp" / "old.dir").exists()
    assert len(remaining) == 1
    live.commit()
    assert blobs.path("files/file-live").read_bytes() == b"whole"
    assert not blobs.path("files/file-dead").exists()
