"""The `validating_files` stage: the whole file is read again against the job's method."""

from __future__ import annotations

from openrft.datasets import JsonlChecker
from openrft.errors import InvalidRequest
from openrft.store import JobRow, Store

__all__ = ["validate_job_files"]

_CHUNK = 1 << 20


def _check(store: Store, job: JobRow, file_id: str, param: str, kind: str) -> int:
    row = store.files.get(job.project, file_id)
    checker = JsonlChecker(max_line_bytes=1 << 30)
    try:
        with store.files.path(row).open("rb") as f:
            while chunk := f.read(_CHUNK):
                checker.feed(chunk)
        summary = checker.finish()
    except InvalidRequest as exc:
        raise InvalidRequest(
            f"The job failed due to an invalid {param.replace('_', ' ')}. {exc.message}",
            param=param,
            code=f"invalid_{param}",
        ) from exc
    if summary.kind is None or summary.kind.value != kind:
        raise InvalidRequest(
            f"The {param.replace('_', ' ')} holds {summary.kind} examples; the job needs {kind}.",
            param=param,
            code=f"invalid_{param}",
        )
    return summary.examples


def validate_job_files(store: Store, job: JobRow) -> None:
    """Raise InvalidRequest (with an OpenAI-style `code`) if a file does not fit the job."""
    kind = {"supervised": "supervised", "reinforcement": "reinforcement"}[job.method["type"]]
    examples = _check(store, job, job.training_file, "training_file", kind)
    if job.validation_file:
        _check(store, job, job.validation_file, "validation_file", kind)
    if examples < 100:
        # Decision 2: a warning, not an error; tiny data sets are how people start.
        store.jobs.add_event(
            job.id,
            f"The training file has {examples} examples; 100 or more are recommended.",
            level="warn",
            dedupe_key="few-examples",
        )
