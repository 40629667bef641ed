"""Uploaded files: rows in `files`, bytes in the blob store under `files/<id>`."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from openrft.errors import NotFound
from openrft.store._blob_store import BlobStore, BlobUpload
from openrft.store._db import Database
from openrft.store._ids import new_id, now
from openrft.store._pages import Page, paginate
from openrft.store._tables import FileRow

__all__ = ["FileRepository"]


def _live():  # noqa: ANN202 - a SQL condition
    """Not expired: an expired file is absent to every read, even before the sweep that
    deletes it has run (OpenAI's `expires_after`)."""
    return (FileRow.expires_at.is_(None)) | (FileRow.expires_at > now())


def _live_file(s: Session, project: str, file_id: str) -> FileRow:
    """The project's file `file_id`, unless it is absent or expired."""
    row = s.scalar(
        select(FileRow).where(FileRow.id == file_id, FileRow.project == project, _live())
    )
    if row is None:
        raise NotFound(f"No such File object: {file_id}", param="id")
    return row


class FileRepository:
    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self._db = db
        self._blobs = blobs

    def open_upload(self) -> tuple[str, BlobUpload]:
        file_id = new_id("file-")
        return file_id, self._blobs.writer(f"files/{file_id}")

    def commit_upload(
        self,
        writer: BlobUpload,
        *,
        file_id: str,
        project: str,
        filename: str,
        purpose: str,
        expires_at: int | None = None,
        kind: str | None = None,
        examples: int | None = None,
    ) -> FileRow:
        """Make the blob visible, then the row: a crash between leaves an orphan blob
        that `sweep_orphans` removes, never a row without bytes."""
        writer.commit()
        row = FileRow(
            id=file_id,
            project=project,
            filename=filename,
            purpose=purpose,
            bytes=writer.size,
            created_at=now(),
            expires_at=expires_at,
            blob_key=writer.key,
            kind=kind,
            examples=examples,
        )
        try:
            with self._db.session() as s:
                s.add(row)
        except BaseException:
            self._blobs.delete(writer.key)
            raise
        return row

    def get(self, project: str, file_id: str) -> FileRow:
        with self._db.session() as s:
            return _live_file(s, project, file_id)

    def list(
        self, project: str, *, purpose: str | None, limit: int, order: str, after: str | None
    ) -> Page[FileRow]:
        with self._db.session() as s:
            query = select(FileRow).where(FileRow.project == project, _live())
            if purpose:
                query = query.where(FileRow.purpose == purpose)
            after_seq = None
            if after:
                after_seq = s.scalar(
                    select(FileRow.seq).where(FileRow.id == after, FileRow.project == project)
                )
                if after_seq is None:
                    raise NotFound(f"No such File object: {after}", param="after")
            return paginate(
                s,
                query,
                seq_column=FileRow.seq,
                after_seq=after_seq,
                limit=limit,
                descending=order == "desc",
            )

    def delete(self, project: str, file_id: str) -> None:
        with self._db.session() as s:
            row = _live_file(s, project, file_id)
            s.delete(row)
        self._blobs.delete(row.blob_key)

    def path(self, row: FileRow):  # noqa: ANN201 - a pathlib.Path
        return self._blobs.path(row.blob_key)

    def sweep_expired(self) -> list[FileRow]:
        """Delete files whose `expires_at` has passed, rows first, then their bytes."""
        with self._db.session() as s:
            rows = list(s.scalars(select(FileRow).where(FileRow.expires_at <= now())))
            for row in rows:
                s.delete(row)
        for row in rows:
            self._blobs.delete(row.blob_key)
        return rows

    def sweep_orphans(self) -> int:
        """Remove file blobs that have no row (a crash between commit steps)."""
        keys = self._blobs.keys("files")
        with self._db.session() as s:
            known = set(s.scalars(select(FileRow.blob_key)))
        orphans = [k for k in keys if k not in known]
        for key in orphans:
            self._blobs.delete(key)
        return len(orphans)
