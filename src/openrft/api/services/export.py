"""Exporting a model as a Hugging Face folder, streamed as a tar archive (an openrft extension).

A LoRA model or checkpoint exports as its PEFT adapter folder, pointed at its base
model's registered source; with `merged=true` every adapter is folded into full
weights. Fully fine-tuned and base models always export as full weights. An adapter
trained on top of another fine-tuned model (Decision 4) only reproduces that model on
the merged parent, so it exports merged only. The folder is built in a worker thread
(merging a big model takes a while and a full copy of its weights), one export at a
time, inside the data folder; the archive streams from it and the folder then goes.
"""

from __future__ import annotations

import re
import shutil
import tarfile
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from openrft.api.services.models import resolve_target
from openrft.errors import InvalidRequest, OpenRFTError, Unavailable
from openrft.store import ModelRow, Store

__all__ = ["ExportPlan", "archive_name", "build_export", "plan_export", "tar_stream"]

_CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE
# Each export holds a full copy of the weights in memory while it merges.
_one_at_a_time = threading.Lock()


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """What to write: an adapter folder (`adapter` set) or full weights (`root` + `merge`)."""

    model_id: str
    root: str
    merge: tuple[str, ...] = ()
    adapter: str | None = None
    base_source: str | None = None

    @property
    def merged(self) -> bool:
        return self.adapter is None


def plan_export(store: Store, row: ModelRow, *, merged: bool) -> ExportPlan:
    """Decide the folder `row` exports as; InvalidRequest for an adapter that needs its parent."""
    target = resolve_target(store, row)
    if target.adapter is None:
        return ExportPlan(row.id, target.weights.root, target.weights.merged)
    if merged:
        return ExportPlan(row.id, target.weights.root, (*target.weights.merged, target.adapter))
    parent_id = (row.details or {}).get("parent")
    if parent_id and store.models.get_any(parent_id) is not None:
        raise InvalidRequest(
            f"The model '{row.id}' is a LoRA adapter trained on top of '{parent_id}', so the "
            "adapter alone does not reproduce it: export it with merged=true",
            param="merged",
        )
    base = store.models.get_base(row.base_model or "")
    if base is None:
        raise Unavailable(
            f"The base model {row.base_model!r} of '{row.id}' is not registered", param="model"
        )
    return ExportPlan(row.id, target.weights.root, adapter=target.adapter, base_source=base.source)


def build_export(plan: ExportPlan, scratch: Path) -> Path:
    """Write the folder into a new temporary folder under `scratch`; the caller removes it.

    Runs in a worker thread. Failures of the model libraries become a 503 naming the model.
    """
    from openrft.inference import write_adapter_folder, write_merged_folder

    scratch.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="export-", dir=scratch))
    try:
        with _one_at_a_time:
            if plan.adapter is not None:
                assert plan.base_source is not None
                write_adapter_folder(
                    plan.adapter, folder, base_model=plan.base_source, tokenizer_source=plan.root
                )
            else:
                write_merged_folder(plan.root, plan.merge, folder)
    except OpenRFTError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise Unavailable(
            f"The model '{plan.model_id}' could not be exported: {exc}", param="model"
        ) from exc
    return folder


def archive_name(model_id: str, *, merged: bool) -> str:
    """A file name for the archive: the id with anything outside [A-Za-z0-9._-] as '-'."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", model_id).strip("-.") or "model"
    return f"{stem}{'-merged' if merged else ''}.tar"


@dataclass(frozen=True, slots=True)
class _Member:
    path: Path
    header: bytes
    size: int

    @property
    def padded(self) -> int:
        return len(self.header) + self.size + (-self.size) % _BLOCK


def _members(folder: Path) -> list[_Member]:
    members = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        info = tarfile.TarInfo(path.relative_to(folder).as_posix())
        info.size = path.stat().st_size
        info.mtime = int(time.time())
        info.mode = 0o644
        members.append(_Member(path, info.tobuf(format=tarfile.PAX_FORMAT), info.size))
    return members


def tar_stream(folder: Path) -> tuple[Iterator[bytes], int]:
    """An uncompressed tar of the files in `folder` (at the archive's root), and its length.

    Written block by block rather than through `tarfile`, which would buffer a whole
    multi-gigabyte weights file; `folder` is removed when the stream ends or is dropped.
    """
    members = _members(folder)
    length = sum(m.padded for m in members) + 2 * _BLOCK

    def chunks() -> Iterator[bytes]:
        try:
            for member in members:
                yield member.header
                with member.path.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        yield chunk
                if member.size % _BLOCK:
                    yield b"\0" * (_BLOCK - member.size % _BLOCK)
            yield b"\0" * (2 * _BLOCK)  # the end-of-archive marker
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    stream = chunks()
    # A response that never starts (the client left first) never enters the `finally`.
    weakref.finalize(stream, shutil.rmtree, folder, ignore_errors=True)
    return stream, length
