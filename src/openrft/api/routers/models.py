"""`/v1/models`: base models, fine-tuned models and checkpoints of the caller's project.

Ids may hold `/` (Hugging Face ids, Decision 10), so the routes take a `path` parameter;
`/{id}/content` (export, an extension) is declared first so the plain route cannot swallow it.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from openrft.api.auth import current_project
from openrft.api.protocol.models import model_deleted, model_object
from openrft.api.services import export
from openrft.errors import NotFound
from openrft.store import ModelRow, Store

__all__ = ["router"]

router = APIRouter(prefix="/v1/models", tags=["models"])


def _store(request: Request) -> Store:
    return request.app.state.store


@router.get("")
def list_models(request: Request, project: str = Depends(current_project)) -> dict[str, Any]:
    rows = _store(request).models.list(project)
    return {"object": "list", "data": [model_object(r) for r in rows]}


def _find_for_export(store: Store, project: str, model_id: str) -> tuple[ModelRow, bool]:
    """The model the path names, and whether it asks for an export: a Hugging Face id may
    itself end in "/content" (such as "org/content"), and then the path is a retrieve."""
    try:
        return store.models.get(project, model_id), True
    except NotFound as missing:
        try:
            return store.models.get(project, f"{model_id}/content"), False
        except NotFound:
            raise missing from None


@router.get("/{model_id:path}/content", response_model=None)
async def export_model(
    request: Request, model_id: str, merged: bool = False, project: str = Depends(current_project)
) -> Response | dict[str, Any]:
    """The model as a tar of a Hugging Face folder: its LoRA adapter, or full weights."""
    store = _store(request)
    row, is_export = await anyio.to_thread.run_sync(_find_for_export, store, project, model_id)
    if not is_export:
        return model_object(row)
    plan = await anyio.to_thread.run_sync(lambda: export.plan_export(store, row, merged=merged))
    scratch = request.app.state.settings.data_dir / "exports"
    folder = await anyio.to_thread.run_sync(export.build_export, plan, scratch)
    chunks, length = export.tar_stream(folder)
    name = export.archive_name(model_id, merged=plan.merged)
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "Content-Length": str(length),
        "X-OpenRFT-Export": "full" if plan.merged else "adapter",
    }
    return StreamingResponse(chunks, media_type="application/x-tar", headers=headers)


@router.get("/{model_id:path}")
def retrieve_model(
    request: Request, model_id: str, project: str = Depends(current_project)
) -> dict[str, Any]:
    return model_object(_store(request).models.get(project, model_id))


@router.delete("/{model_id:path}")
def delete_model(
    request: Request, model_id: str, project: str = Depends(current_project)
) -> dict[str, Any]:
    # Marks the row deleted and removes its weights (and a checkpoint's resume state).
    _store(request).retention.delete_model(project, model_id)
    return model_deleted(model_id)
