"""`string_check`: eq, ne, like (contains), ilike (contains, any case) [GRADERS-GUIDE]."""

from __future__ import annotations

from typing import Any

from ._sample import Sample
from ._spec import StringCheckGrader
from ._templates import render

__all__ = ["string_check"]


def string_check(grader: StringCheckGrader, sample: Sample, item: dict[str, Any]) -> float:
    """1.0 when the rendered input and reference satisfy the operation, else 0.0."""
    text = render(grader.input, sample, item)
    reference = render(grader.reference, sample, item)
    if grader.operation == "eq":
        passed = text == reference
    elif grader.operation == "ne":
        passed = text != reference
    elif grader.operation == "like":
        passed = reference in text
    else:  # ilike; parse_grader admits no other operation
        passed = reference.casefold() in text.casefold()
    return 1.0 if passed else 0.0
