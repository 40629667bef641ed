"""Shapes shared by every resource: list pages."""

from __future__ import annotations

from typing import Any

__all__ = ["cursor_page"]


def cursor_page(
    data: list[dict[str, Any]], *, has_more: bool, with_ids: bool = True
) -> dict[str, Any]:
    """OpenAI's cursor page; `first_id`/`last_id` where the spec has them (files, checkpoints)."""
    page: dict[str, Any] = {"object": "list", "data": data, "has_more": has_more}
    if with_ids:
        page["first_id"] = data[0]["id"] if data else None
        page["last_id"] = data[-1]["id"] if data else None
    return page
