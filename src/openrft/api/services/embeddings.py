"""The embedding model of `cosine` graders, imported only when a grader first needs it
(Decision 11: the API process loads torch only for work that needs it)."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["LazyEmbedder"]


class LazyEmbedder:
    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._impl: Any = None

    def embed(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            if self._impl is None:
                from openrft.inference import TextEmbedder

                self._impl = TextEmbedder(self._path)
        return self._impl.embed(texts)
