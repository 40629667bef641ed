"""`openrft gc`: find blobs no row refers to, and remove them.

What counts as referenced:

    files/<id>                 a `files` row with that blob key
    jobs/<job>/                a job row; a job not finished is left alone entirely
    jobs/<job>/final           a live fine-tuned model whose weights these are
    jobs/<job>/ckpt-step-N     a checkpoint row not pruned (or a live model inside it)
    tmp/*                      never: an interrupted write

A LoRA model is served on its parent's weights (Decision 4), so a live model keeps
its parents' blobs too. Nothing written in the last `min_age_s` seconds is touched:
an upload or a checkpoint is renamed into place a moment before its row is written,
and gc must not race that. Names gc does not know (another part's folders, odd
entries in a job folder) are left as they are.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from sqlalchemy import select

from openrft.store._jobs import TERMINAL
from openrft.store._store import Store
from openrft.store._tables import CheckpointRow, FileRow, JobRow, ModelRow

__all__ = ["GcReport", "collect_garbage"]

_JOB_BLOB = re.compile(r"final|ckpt-step-\d+")


@dataclass
class GcReport:
    removed: list[tuple[str, int]] = field(default_factory=list)  # (blob key, bytes)
    dry_run: bool = False

    @property
    def freed(self) -> int:
        return sum(size for _, size in self.removed)


@dataclass(frozen=True)
class _References:
    files: set[str]
    jobs: dict[str, str]  # job id -> status
    weights: set[str]  # blob keys of live models' weights and checkpoint folders


def _references(store: Store) -> _References:
    with store.db.session() as s:
        files = set(s.scalars(select(FileRow.blob_key)))
        jobs = {job_id: status for job_id, status in s.execute(select(JobRow.id, JobRow.status))}
        weights = set(
            s.scalars(select(CheckpointRow.blob_key).where(CheckpointRow.pruned.is_(False)))
        )
        models = {m.id: m for m in s.scalars(select(ModelRow).where(ModelRow.project.is_not(None)))}
    for model in models.values():
        if model.deleted:
            continue
        row: ModelRow | None = model
        seen: set[str] = set()
        while row is not None and row.id not in seen:  # the model, then its parents
            seen.add(row.id)
            weights.add(row.source)
            parent = (row.details or {}).get("parent")
            row = models.get(parent) if parent else None
    return _References(files=files, jobs=jobs, weights=weights)


def _candidates(store: Store, refs: _References) -> list[str]:
    found: list[str] = []
    for key in store.blobs.keys("files"):
        if key not in refs.files:
            found.append(key)
    for key in store.blobs.keys("jobs"):
        job_id = key.removeprefix("jobs/")
        status = refs.jobs.get(job_id)
        if status is None:
            found.append(key)  # a deleted job's folder, whole
        elif status in TERMINAL:
            for child in store.blobs.keys(key):
                name = child.rsplit("/", 1)[-1]
                used = child in refs.weights or any(w.startswith(child + "/") for w in refs.weights)
                if _JOB_BLOB.fullmatch(name) and not used:
                    found.append(child)
    found += store.blobs.keys("tmp")
    return found


def collect_garbage(store: Store, *, dry_run: bool = False, min_age_s: float = 3600) -> GcReport:
    """Remove (or, with `dry_run`, only list) unreferenced blobs older than `min_age_s`."""
    refs = _references(store)
    cutoff = time.time() - min_age_s
    report = GcReport(dry_run=dry_run)
    for key in _candidates(store, refs):
        found = store.blobs.stat(key)  # one walk (or one HEAD/LIST) for both
        if found is None or found.modified > cutoff:  # gone meanwhile, or too recent
            continue
        if not dry_run:
            store.blobs.delete(key)
        report.removed.append((key, found.size))
    return report
