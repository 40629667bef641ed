"""`/v1/models`: base models, fine-tuned models and checkpoints of the caller's project.

Ids may hold `/` (Hugging Face ids, Decision 10), so the routes take a `path` parameter.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from openrft.api.auth import current_project
from openrft.api.protocol.models import model_deleted, model_object
from openrft.store import Store

__all__ = ["router"]

router = APIRouter(prefix="/v1/models", tags=["models"])


def _store(request: Request) -> Store:
    return request.app.state.store


@router.get("")
def list_models(request: Request, project: str = Depends(current_project)) -> dict[str, Any]:
    rows = _store(request).models.list(project)
    return {"object": "list", "data": [model_object(r) for r in rows]}


@router.get("/{model_id:path}")
def retrieve_model(
    request: Request, model_id: str, project: str = Depends(current_project)
) -> dict[str, Any]:
    return model_object(_store(request).models.get(project, model_id))


@router.delete("/{model_id:path}")
def delete_model(
    request: Request, model_id: str, project: str = Depends(current_project)
) -> dict[str, Any]:
    _store(request).models.delete(project, model_id)
    return model_deleted(model_id)
