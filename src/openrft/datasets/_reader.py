"""Reading examples back from a stored, already checked JSONL file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["iter_examples"]


def iter_examples(path: Path) -> Iterator[dict[str, Any]]:
    """Yield each non-blank line of a JSONL file as a dict, one line in memory at a time."""
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)
