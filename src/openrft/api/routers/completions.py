"""`POST /v1/completions` (legacy): picks JSON or an event stream; the work is in
`services.completions`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from openrft.api.auth import current_project
from openrft.api.protocol.completions import CompletionRequest
from openrft.api.services.completions import create_completion
from openrft.api.sse import json_or_stream

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["completions"])


@router.post("/completions", response_model=None)
async def create(
    request: Request, body: CompletionRequest, project: str = Depends(current_project)
) -> Response:
    return json_or_stream(await create_completion(request.app.state.models, project, body))
