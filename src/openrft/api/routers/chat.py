"""`POST /v1/chat/completions`: picks JSON or an event stream; the work is in `services.chat`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from openrft.api.auth import current_project
from openrft.api.protocol.chat import ChatCompletionRequest
from openrft.api.services.chat import create_chat_completion
from openrft.api.sse import json_or_stream

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["chat"])


@router.post("/chat/completions", response_model=None)
async def create(
    request: Request, body: ChatCompletionRequest, project: str = Depends(current_project)
) -> Response:
    return json_or_stream(await create_chat_completion(request.app.state.models, project, body))
