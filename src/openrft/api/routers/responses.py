"""`POST /v1/responses`: picks JSON or an event stream; the work is in `services.responses`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from openrft.api.auth import current_project
from openrft.api.protocol.responses import ResponseRequest
from openrft.api.services.responses import create_response
from openrft.api.sse import json_or_stream

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["responses"])


@router.post("/responses", response_model=None)
async def create(
    request: Request, body: ResponseRequest, project: str = Depends(current_project)
) -> Response:
    return json_or_stream(await create_response(request.app.state.models, project, body))
