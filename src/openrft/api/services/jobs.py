"""Creating a fine-tuning job: every check that can be made synchronously is made here,
so a bad request gets its 400 naming the `param` before anything is queued."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from openrft.api.protocol.jobs import JobCreate
from openrft.errors import InvalidRequest, NotFound
from openrft.methods import MethodSpec, parse_method
from openrft.store import FileRow, JobRow, Store, new_id, now

__all__ = ["create_job"]

GraderCheck = Callable[[dict[str, Any], str], None]


def _file(store: Store, project: str, file_id: str, param: str, spec: MethodSpec) -> FileRow:
    try:
        row = store.files.get(project, file_id)
    except NotFound:
        raise InvalidRequest(f"invalid {param}: {file_id}", param=param) from None
    if row.purpose != "fine-tune":
        raise InvalidRequest(
            f"{param} {file_id} has purpose {row.purpose!r}; upload it with purpose 'fine-tune'.",
            param=param,
        )
    if row.kind != spec.file_kind:
        raise InvalidRequest(
            f"{param} {file_id} holds {row.kind} examples, but the {spec.type} method needs "
            f"{spec.file_kind} examples"
            + (" (messages ending with a user turn)." if spec.type == "reinforcement" else "."),
            param=param,
        )
    return row


def _check_batch(spec: MethodSpec, examples: int) -> None:
    batch = spec.hyperparameters.batch_size
    if batch != "auto" and batch > examples:
        raise InvalidRequest(
            f"batch_size {batch} is larger than the {examples} examples in the training file: "
            f"use a batch_size of at most {examples}, or add examples.",
            param=f"method.{spec.type}.hyperparameters.batch_size",
        )


def create_job(
    store: Store, project: str, body: JobCreate, *, check_grader: GraderCheck | None
) -> JobRow:
    spec = parse_method(body.method, body.hyperparameters)
    try:
        model = store.models.get(project, body.model)
    except NotFound:
        raise InvalidRequest(
            f"Model {body.model} does not exist or you do not have access to it.", param="model"
        ) from None
    training = _file(store, project, body.training_file, "training_file", spec)
    if body.validation_file:
        _file(store, project, body.validation_file, "validation_file", spec)
    _check_batch(spec, training.examples or 0)
    if spec.grader is not None and check_grader is not None:
        check_grader(spec.grader, "method.reinforcement.grader")
    job_id = new_id("ftjob-")
    row = JobRow(
        id=job_id,
        project=project,
        model=body.model,
        base_model=model.base_model or model.id,
        training_file=body.training_file,
        validation_file=body.validation_file,
        suffix=body.suffix,
        seed=body.seed if body.seed is not None else secrets.randbelow(2_147_483_647),
        job_metadata=body.metadata,
        integrations=[i.model_dump() for i in body.integrations] if body.integrations else None,
        method=spec.to_json(),
        status="validating_files",
        created_at=now(),
        result_files=[],
        attempts=0,
    )
    store.jobs.create(row)
    store.jobs.add_event(job_id, f"Created fine-tuning job: {job_id}", dedupe_key="created")
    files = f"training file: {body.training_file}"
    if body.validation_file:
        files += f" and validation file: {body.validation_file}"
    store.jobs.add_event(job_id, f"Validating {files}", dedupe_key="validating")
    return row
