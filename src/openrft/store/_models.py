"""Models: base models (every project sees them), fine-tuned models and checkpoints."""

from __future__ import annotations

from sqlalchemy import or_, select

from openrft.errors import Conflict, NotFound
from openrft.store._db import Database
from openrft.store._ids import now
from openrft.store._tables import ModelRow

__all__ = ["ModelRepository"]


class ModelRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def register_base(self, name: str, source: str, *, details: dict | None = None) -> ModelRow:
        with self._db.session() as s:
            row = s.scalar(select(ModelRow).where(ModelRow.id == name))
            if row is not None and (row.kind != "base" or row.deleted):
                raise Conflict(f"The model id {name!r} is taken", param="name")
            if row is None:
                row = ModelRow(id=name, kind="base", created_at=now(), owned_by="openrft")
                s.add(row)
            row.source = source
            row.details = details
        return row

    def add(self, row: ModelRow) -> ModelRow:
        with self._db.session() as s:
            s.add(row)
        return row

    def _visible(self, project: str):  # noqa: ANN202 - a SQL condition
        return (ModelRow.deleted.is_(False)) & or_(
            ModelRow.project.is_(None), ModelRow.project == project
        )

    def get(self, project: str, model_id: str) -> ModelRow:
        with self._db.session() as s:
            row = s.scalar(select(ModelRow).where(ModelRow.id == model_id, self._visible(project)))
        if row is None:
            raise NotFound(
                f"The model '{model_id}' does not exist", param="model", code="model_not_found"
            )
        return row

    def get_any(self, model_id: str) -> ModelRow | None:
        """The row for `model_id` whatever its project or state (workers, housekeeping)."""
        with self._db.session() as s:
            return s.scalar(select(ModelRow).where(ModelRow.id == model_id))

    def get_base(self, name: str) -> ModelRow | None:
        with self._db.session() as s:
            return s.scalar(select(ModelRow).where(ModelRow.id == name, ModelRow.kind == "base"))

    def list(self, project: str) -> list[ModelRow]:
        with self._db.session() as s:
            query = select(ModelRow).where(self._visible(project)).order_by(ModelRow.seq)
            return list(s.scalars(query))
