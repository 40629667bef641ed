"""Models API shapes, from `openai.types.Model` and `ModelDeleted`."""

from __future__ import annotations

from typing import Any

from openai.types import Model, ModelDeleted

from openrft.store import ModelRow

__all__ = ["model_deleted", "model_object"]


def model_object(row: ModelRow) -> dict[str, Any]:
    owner = row.owned_by if row.project is None else row.project
    return Model(id=row.id, object="model", created=row.created_at, owned_by=owner).model_dump(
        exclude_none=True
    )


def model_deleted(model_id: str) -> dict[str, Any]:
    return ModelDeleted(id=model_id, object="model", deleted=True).model_dump()
