"""`response_format` enforced by constrained decoding with xgrammar.

xgrammar was chosen over llguidance and outlines: it compiles a JSON schema once
into a grammar whose per-token masks are mostly precomputed, fills a CPU bitmask
in microseconds per step, and reads Hugging Face byte-level vocabularies
directly; outlines builds a whole-vocabulary index per schema (slow to compile),
and llguidance, equally fast, needs more glue for the same result.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import torch
import xgrammar as xgr
from transformers import PreTrainedTokenizerBase

from openrft.errors import InvalidRequest

__all__ = ["GrammarBook", "JsonConstraint"]


class GrammarBook:
    """Compiles (and caches) the grammar of each distinct `response_format` for one vocabulary."""

    def __init__(
        self,
        *,
        tokenizer: PreTrainedTokenizerBase,
        vocab_size: int,
        stop_ids: list[int],
        special_ids: set[int],
    ) -> None:
        self.info = xgr.TokenizerInfo.from_huggingface(
            tokenizer, vocab_size=vocab_size, stop_token_ids=stop_ids
        )
        self._compiler = xgr.GrammarCompiler(self.info, max_threads=1)
        self._stop_ids = stop_ids
        self._vocab_size = vocab_size
        self._cache: dict[str, xgr.CompiledGrammar] = {}
        self._lock = threading.Lock()
        # Specials other than the stop token decode to no text, so a grammar must never
        # pick them (xgrammar would read "<pad>" as the five characters). xgrammar's string
        # rule also admits raw control characters, which strict JSON parsers reject; JSON never
        # needs one (escapes inside strings, a space outside), so tokens holding one are banned.
        vocab = self.info.decoded_vocab
        banned = {i for i in special_ids if i not in stop_ids and i < vocab_size}
        banned |= {
            i for i, b in enumerate(vocab) if i not in special_ids and any(c < 0x20 for c in b)
        }
        self._banned = torch.tensor(sorted(banned), dtype=torch.long)

    def compile(self, schema: dict[str, Any] | bool) -> xgr.CompiledGrammar:
        """The grammar for `json_schema(...)`'s result; InvalidRequest on a schema xgrammar rejects."""
        key = json.dumps(schema, sort_keys=True)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = self._compile(schema)
            return self._cache[key]

    def _compile(self, schema: dict[str, Any] | bool) -> xgr.CompiledGrammar:
        if schema is True:
            # json_object mode promises an object (OpenAI's contract), not any JSON value:
            # xgrammar's builtin JSON grammar would also accept `[false]`.
            return self._compiler.compile_json_schema(
                '{"type": "object"}', any_whitespace=False, strict_mode=False
            )
        try:
            # Compact output: free whitespace lets a weak model pad forever.
            return self._compiler.compile_json_schema(
                json.dumps(schema), any_whitespace=False, strict_mode=True
            )
        except Exception as exc:  # xgrammar raises RuntimeError/ValueError subclasses
            raise InvalidRequest(f"invalid JSON schema: {exc}", param="response_format") from exc

    def matcher(self, grammar: xgr.CompiledGrammar) -> JsonConstraint:
        return JsonConstraint(
            matcher=xgr.GrammarMatcher(grammar, override_stop_tokens=self._stop_ids)
        )

    def apply(
        self, logits: torch.Tensor, rows: list[int], constraints: list[JsonConstraint]
    ) -> None:
        """Mask, in place, every token the grammar forbids in `logits` (B, V) at `rows`."""
        bitmask = xgr.allocate_token_bitmask(logits.shape[0], self._vocab_size)
        for row, constraint in zip(rows, constraints, strict=True):
            constraint.matcher.fill_next_token_bitmask(bitmask, row)
        # logits may be wider than the vocabulary xgrammar knows (padded embeddings).
        xgr.apply_token_bitmask_inplace(logits, bitmask, vocab_size=self._vocab_size, indices=rows)
        if self._banned.numel():
            index = torch.tensor(rows, dtype=torch.long)
            logits[index.unsqueeze(1), self._banned.unsqueeze(0)] = float("-inf")
        if logits.shape[1] > self._vocab_size:
            logits[rows, self._vocab_size :] = float("-inf")


class JsonConstraint:
    """One choice's grammar state."""

    def __init__(self, *, matcher: xgr.GrammarMatcher) -> None:
        self.matcher = matcher

    def accept(self, token_id: int) -> None:
        if not self.matcher.is_terminated():
            self.matcher.accept_token(token_id)

    @property
    def done(self) -> bool:
        """The grammar finished and the stop token was taken."""
        return self.matcher.is_terminated()
