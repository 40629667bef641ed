"""Cursor pagination over `seq`, shared by every list endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session

__all__ = ["Page", "paginate"]

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    rows: list[T]
    has_more: bool


def paginate(
    session: Session,
    query: Select[Any],
    *,
    seq_column: Any,
    after_seq: int | None,
    limit: int,
    descending: bool,
) -> Page[Any]:
    """Rows after the cursor in the given order; one extra row fetched tells `has_more`."""
    if after_seq is not None:
        query = query.where(seq_column < after_seq if descending else seq_column > after_seq)
    query = query.order_by(seq_column.desc() if descending else seq_column.asc()).limit(limit + 1)
    rows = list(session.scalars(query))
    return Page(rows=rows[:limit], has_more=len(rows) > limit)
