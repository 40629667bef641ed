"""Files API shapes, built from the `openai` package's own types so they cannot drift."""

from __future__ import annotations

from typing import Any, Literal

from openai.types import FileDeleted, FileObject

from openrft.store import FileRow

__all__ = ["UPLOAD_PURPOSES", "FileOrder", "file_deleted", "file_object"]

# Purposes accepted on upload (openai.types.FilePurpose).
UPLOAD_PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
FileOrder = Literal["asc", "desc"]


def file_object(row: FileRow) -> dict[str, Any]:
    obj = FileObject.model_construct(
        id=row.id,
        object="file",
        bytes=row.bytes,
        created_at=row.created_at,
        expires_at=row.expires_at,
        filename=row.filename,
        purpose=row.purpose,  # type: ignore[arg-type]
        # Checking happens while the bytes arrive, so a stored file is always processed.
        status="processed",
        status_details=None,
    )
    return obj.model_dump()


def file_deleted(file_id: str) -> dict[str, Any]:
    return FileDeleted(id=file_id, object="file", deleted=True).model_dump()
