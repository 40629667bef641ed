"""`/v1/fine_tuning/alpha/graders`: run a grader on one sample, or validate a grader."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from openrft.api.auth import current_project
from openrft.graders import run_grader, validate_grader

__all__ = ["router"]

router = APIRouter(prefix="/v1/fine_tuning/alpha/graders", tags=["graders"])


class GraderRun(BaseModel):
    """OpenAI's `GraderRunParams`: the grader, the model's sample, and the data item."""

    model_config = ConfigDict(extra="forbid")

    grader: dict[str, Any]
    model_sample: str
    item: Any = None


class GraderValidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grader: dict[str, Any]


@router.post("/run")
async def run(
    request: Request, body: GraderRun, project: str = Depends(current_project)
) -> dict[str, Any]:
    return await run_grader(request.app.state.grading, body.grader, body.model_sample, body.item)


@router.post("/validate")
async def validate(
    request: Request, body: GraderValidate, project: str = Depends(current_project)
) -> dict[str, Any]:
    return await validate_grader(request.app.state.grading, body.grader)
