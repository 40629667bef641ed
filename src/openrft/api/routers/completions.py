"""`POST /v1/completions` (legacy): picks JSON or an event stream; the work is in
`services.completions`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from openrft.api.auth import current_project
from openrft.api.protocol.completions import CompletionRequest
from openrft.api.services.completions import create_completion
from openrft.api.sse import EventStreamResponse

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["completions"])


@router.post("/completions", response_model=None)
async def create(
    request: Request, body: CompletionRequest, project: str = Depends(current_project)
) -> Response:
    result = await create_completion(request.app.state.models, project, body)
    if isinstance(result, dict):
        return JSONResponse(result)
    return EventStreamResponse(result)
