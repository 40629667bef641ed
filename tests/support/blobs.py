"""Blob contents shared by the blob-store tests of both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def file_and_folder(blobs: Any, tmp_path: Path, *, file: str, folder: str) -> None:
    """A 5-byte object at `file`, and at `folder` a checkpoint-like folder of 10 bytes:
    `model/weights` (7 bytes) and `state.pt` (3)."""
    w = blobs.writer(file)
    w.write(b"12345")
    w.commit()
    src = tmp_path / "src"
    (src / "model").mkdir(parents=True)
    (src / "model" / "weights").write_bytes(b"x" * 7)
    (src / "state.pt").write_bytes(b"abc")
    blobs.put_dir(folder, src)
