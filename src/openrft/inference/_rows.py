"""The scheduler's view of a request and of each of its choices (one batch row each)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._constrained import JsonConstraint
from ._detokenize import TextStream, Vocab
from ._params import ChoiceDelta, Completion, FinishReason, SamplingParams, TokenLogprob, TopLogprob

__all__ = ["Job", "Row"]


@dataclass(eq=False)
class Job:
    """An admitted or waiting request. `sink` receives lists of ChoiceDelta (when `stream`),
    then one GenerationResult, or an exception; it is called from the scheduler thread."""

    prompt_ids: list[int]
    sampling: SamplingParams
    adapter: str | None
    seed: int
    max_new_tokens: int
    grammar: Any  # xgrammar.CompiledGrammar or None
    sink: Callable[[object], None]
    stream: bool
    entropy: bool = False  # report each token's sampling entropy (for the trainer)
    cancelled: bool = False
    released: bool = False  # counted out of the scheduler's in-flight requests
    done: list[Completion | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.done = [None] * self.sampling.n

    @property
    def n(self) -> int:
        return self.sampling.n


class Row:
    """One choice being decoded: its tokens, log-probabilities, text and grammar state."""

    def __init__(
        self,
        *,
        job: Job,
        index: int,
        key: int | None,
        vocab: Vocab,
        constraint: JsonConstraint | None,
    ) -> None:
        self.job = job
        self.index = index
        self.key = key  # the row's random stream (`_sampling.row_key`); None: greedy
        self.constraint = constraint
        self._vocab = vocab
        self._text = TextStream(vocab=vocab, stop=job.sampling.stop)
        self.token_ids: list[int] = []
        self.token_logprobs: list[float] = []
        self.token_entropies: list[float] | None = [] if job.entropy else None
        self.logprobs: list[TokenLogprob] | None = [] if job.sampling.logprobs else None
        self.finish_reason: FinishReason | None = None

    def advance(
        self,
        token: int,
        logprob: float,
        top: tuple[list[float], list[int]] | None,
        stop_ids: set[int],
        entropy: float | None = None,
    ) -> ChoiceDelta:
        """Take one sampled token; return what it adds to the stream."""
        self.token_ids.append(token)
        self.token_logprobs.append(logprob)
        if self.token_entropies is not None:
            assert entropy is not None, "a row that reports entropies got none"
            self.token_entropies.append(entropy)
        if self.constraint is not None:
            self.constraint.accept(token)
        entries: list[TokenLogprob] = []
        if self.logprobs is not None and token not in self._vocab.special_ids:
            entries.append(self._entry(token, logprob, top))
            self.logprobs.extend(entries)
        text = self._text.push(token)
        if token in stop_ids or self._text.stopped or (self.constraint and self.constraint.done):
            self.finish_reason = "stop"
        elif len(self.token_ids) >= self.job.max_new_tokens:
            self.finish_reason = "length"
        if self.finish_reason is not None:
            text += self._text.finish()
        return ChoiceDelta(
            index=self.index,
            text=text,
            token_ids=[token],
            logprobs=entries,
            finish_reason=self.finish_reason,
        )

    def completion(self) -> Completion:
        assert self.finish_reason is not None, "completion() of an unfinished row"
        return Completion(
            index=self.index,
            text=self._text.text,
            token_ids=self.token_ids,
            token_logprobs=self.token_logprobs,
            finish_reason=self.finish_reason,
            logprobs=self.logprobs,
            token_entropies=self.token_entropies,
        )

    def _entry(
        self, token: int, logprob: float, top: tuple[list[float], list[int]] | None
    ) -> TokenLogprob:
        k = self.job.sampling.top_logprobs
        tops = []
        if top is not None and k:
            values, ids = top
            tops = [self._top(i, v) for v, i in zip(values[:k], ids[:k], strict=True)]
        v = self._vocab
        return TokenLogprob(
            token=v.display[token], logprob=logprob, bytes=v.display_bytes[token], top_logprobs=tops
        )

    def _top(self, token: int, logprob: float) -> TopLogprob:
        return TopLogprob(
            token=self._vocab.display[token],
            logprob=logprob,
            bytes=self._vocab.display_bytes[token],
        )
