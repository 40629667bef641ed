"""`/v1/files`: upload, list, retrieve, content, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response, StreamingResponse

from openrft.api.auth import current_project
from openrft.api.protocol.common import cursor_page
from openrft.api.protocol.files import UPLOAD_PURPOSES, FileOrder, file_deleted, file_object
from openrft.api.services.quotas import check_storage
from openrft.api.services.uploads import ParsedUpload, receive_upload
from openrft.errors import InvalidRequest
from openrft.store import LocalBlobStore, Store, now

__all__ = ["router"]

router = APIRouter(prefix="/v1/files", tags=["files"])


def _store(request: Request) -> Store:
    return request.app.state.store


def _expires_at(fields: dict[str, str]) -> int | None:
    anchor = fields.get("expires_after[anchor]")
    seconds = fields.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise InvalidRequest(
            "expires_after.anchor must be 'created_at'.", param="expires_after.anchor"
        )
    try:
        value = int(seconds or "")
    except ValueError:
        value = -1
    if not 3600 <= value <= 2_592_000:
        raise InvalidRequest(
            "expires_after.seconds must be an integer between 3600 and 2592000.",
            param="expires_after.seconds",
        )
    return now() + value


def _check_upload(upload: ParsedUpload) -> tuple[str, int | None]:
    purpose = upload.fields.get("purpose")
    if not purpose:
        raise InvalidRequest("Missing required parameter: 'purpose'.", param="purpose")
    if purpose not in UPLOAD_PURPOSES:
        raise InvalidRequest(
            f"Invalid value for 'purpose': {purpose!r}. Expected one of "
            + ", ".join(sorted(UPLOAD_PURPOSES))
            + ".",
            param="purpose",
        )
    if upload.filename is None:
        raise InvalidRequest("Missing required parameter: 'file'.", param="file")
    # What the `files.filename` column holds on every backend (PostgreSQL enforces both).
    if len(upload.filename) > 1024 or "\x00" in upload.filename:
        raise InvalidRequest(
            "The file name must be at most 1024 characters long, with no NUL character.",
            param="file",
        )
    if purpose == "fine-tune":
        if not upload.filename.endswith(".jsonl"):
            raise InvalidRequest(
                f"Invalid file format for Fine-Tuning API. Must be .jsonl (got {upload.filename!r}).",
                param="file",
            )
        if upload.file_error is not None:
            raise upload.file_error
    return purpose, _expires_at(upload.fields)


@router.post("")
async def create_file(request: Request, project: str = Depends(current_project)) -> dict[str, Any]:
    store = _store(request)
    settings = request.app.state.settings
    file_id, writer = store.files.open_upload()
    try:
        upload = await receive_upload(
            request,
            writer,
            max_bytes=settings.max_upload_bytes,
            max_line_bytes=settings.max_line_bytes,
        )
        purpose, expires_at = _check_upload(upload)
        # Checked once the size is known: the body is streamed, never held in memory.
        await run_in_threadpool(lambda: check_storage(store, project, settings, adding=upload.size))
    except BaseException:
        writer.abort()
        raise
    fine_tune = purpose == "fine-tune" and upload.summary is not None
    row = await run_in_threadpool(
        lambda: store.files.commit_upload(
            writer,
            file_id=file_id,
            project=project,
            filename=upload.filename or "upload",
            purpose=purpose,
            expires_at=expires_at,
            kind=upload.summary.kind.value if fine_tune and upload.summary.kind else None,
            examples=upload.summary.examples if fine_tune else None,
        )
    )
    return file_object(row)


@router.get("")
def list_files(
    request: Request,
    purpose: str | None = None,
    limit: int = Query(10_000, ge=1, le=10_000),
    order: FileOrder = "desc",
    after: str | None = None,
    project: str = Depends(current_project),
) -> dict[str, Any]:
    page = _store(request).files.list(
        project, purpose=purpose, limit=limit, order=order, after=after
    )
    return cursor_page([file_object(r) for r in page.rows], has_more=page.has_more)


@router.get("/{file_id}")
def retrieve_file(
    request: Request, file_id: str, project: str = Depends(current_project)
) -> dict[str, Any]:
    return file_object(_store(request).files.get(project, file_id))


@router.get("/{file_id}/content")
def file_content(
    request: Request, file_id: str, project: str = Depends(current_project)
) -> Response:
    store = _store(request)
    row = store.files.get(project, file_id)
    if isinstance(store.blobs, LocalBlobStore):
        return FileResponse(store.files.path(row), media_type="application/octet-stream")
    # From an object store, chunk by chunk as they arrive: a big file is never first
    # copied to local disk (StreamingResponse iterates a plain iterator in a thread).
    return StreamingResponse(
        store.blobs.iter_bytes(row.blob_key),
        media_type="application/octet-stream",
        headers={"Content-Length": str(row.bytes)},
    )


@router.delete("/{file_id}")
def delete_file(
    request: Request, file_id: str, project: str = Depends(current_project)
) -> dict[str, Any]:
    _store(request).files.delete(project, file_id)
    return file_deleted(file_id)
