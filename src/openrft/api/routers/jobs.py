"""`/v1/fine_tuning/jobs`: create, list, retrieve, cancel, pause, resume, events, checkpoints."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from openrft.api.auth import current_project
from openrft.api.protocol.common import cursor_page
from openrft.api.protocol.jobs import (
    JobCreate,
    checkpoint_object,
    event_object,
    job_object,
    rollout_object,
)
from openrft.api.services.jobs import create_job
from openrft.api.services.quotas import check_concurrent_jobs
from openrft.store import Store

__all__ = ["router"]

router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["fine-tuning"])


def _store(request: Request) -> Store:
    return request.app.state.store


@router.post("")
def create(
    request: Request, body: JobCreate, project: str = Depends(current_project)
) -> dict[str, Any]:
    check_concurrent_jobs(_store(request), project, request.app.state.settings)
    row = create_job(_store(request), project, body, check_grader=request.app.state.check_grader)
    request.app.state.wake_scheduler()
    return job_object(row)


@router.get("")
def list_jobs(
    request: Request,
    after: str | None = None,
    limit: int = Query(20, ge=1, le=100),
    project: str = Depends(current_project),
) -> dict[str, Any]:
    # The SDK sends `metadata[key]=value` (bracket encoding) for the metadata filter.
    metadata = {
        k[len("metadata[") : -1]: v
        for k, v in request.query_params.items()
        if k.startswith("metadata[") and k.endswith("]")
    }
    page = _store(request).jobs.list(project, limit=limit, after=after, metadata=metadata)
    return cursor_page([job_object(r) for r in page.rows], has_more=page.has_more, with_ids=False)


@router.get("/{job_id}")
def retrieve(
    request: Request, job_id: str, project: str = Depends(current_project)
) -> dict[str, Any]:
    return job_object(_store(request).jobs.get(project, job_id))


def _control(action: str):  # noqa: ANN202 - a route function
    def route(
        request: Request, job_id: str, project: str = Depends(current_project)
    ) -> dict[str, Any]:
        row = _store(request).jobs.request(project, job_id, action)
        request.app.state.wake_scheduler()
        return job_object(row)

    route.__name__ = action
    return route


for _action in ("cancel", "pause", "resume"):
    router.add_api_route(f"/{{job_id}}/{_action}", _control(_action), methods=["POST"])


@router.delete("/{job_id}")
def delete(
    request: Request, job_id: str, project: str = Depends(current_project)
) -> dict[str, Any]:
    """An openrft extension: delete a finished job with its events, checkpoints, rollouts,
    fine-tuned models, result files and weights."""
    _store(request).retention.delete_job(project, job_id)
    return {"id": job_id, "object": "fine_tuning.job", "deleted": True}


@router.get("/{job_id}/events")
def events(
    request: Request,
    job_id: str,
    after: str | None = None,
    limit: int = Query(20, ge=1, le=1000),
    project: str = Depends(current_project),
) -> dict[str, Any]:
    store = _store(request)
    store.jobs.get(project, job_id)
    page = store.jobs.events(job_id, limit=limit, after=after)
    return cursor_page([event_object(r) for r in page.rows], has_more=page.has_more, with_ids=False)


@router.get("/{job_id}/checkpoints")
def checkpoints(
    request: Request,
    job_id: str,
    after: str | None = None,
    limit: int = Query(10, ge=1, le=100),
    project: str = Depends(current_project),
) -> dict[str, Any]:
    store = _store(request)
    store.jobs.get(project, job_id)
    page = store.jobs.checkpoints(job_id, limit=limit, after=after)
    return cursor_page([checkpoint_object(r) for r in page.rows], has_more=page.has_more)


@router.get("/{job_id}/rollouts")
def rollouts(
    request: Request,
    job_id: str,
    after: str | None = None,
    limit: int = Query(20, ge=1, le=1000),
    step: int | None = Query(None, ge=1),
    project: str = Depends(current_project),
) -> dict[str, Any]:
    """An openrft extension: sample completions of a reinforcement job with their grades."""
    store = _store(request)
    store.jobs.get(project, job_id)
    page = store.jobs.rollouts(job_id, limit=limit, after=after, step=step)
    return cursor_page([rollout_object(r) for r in page.rows], has_more=page.has_more)
