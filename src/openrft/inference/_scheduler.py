"""The background thread that batches every request into shared forward passes.

Continuous batching: each loop admits waiting requests in FIFO order while rows
are free, prefills them together (a request's prompt once, however many choices
it has), merges them into the running batch of their adapter, and advances every
running batch by one token. Finished and cancelled rows leave at step
boundaries, so a disconnected client frees its rows within one step.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from math import inf

import torch

from openrft.errors import RateLimited, Unavailable

from ._constrained import GrammarBook
from ._detokenize import Vocab
from ._kvcache import KVBatch
from ._params import ChoiceDelta, GenerationResult, Usage
from ._rows import Job, Row
from ._sampling import row_key, sample, sampling_entropy, top_logprobs
from ._stream import AsyncSink, deliver_batched

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)


class _Group:
    """The running rows of one adapter (None: the base model) and their KV cache."""

    def __init__(self) -> None:
        self.kv: KVBatch | None = None
        self.rows: list[Row] = []


class Scheduler:
    """Owns the model's forward passes; `submit` and `cancel` may be called from any thread.

    Parameters:
        model: the causal LM (possibly a PeftModel).
        activate: context manager factory that switches the model to an adapter (None: base).
        vocab, grammars: detokenization and response_format constraints of the tokenizer.
        stop_ids: tokens that end a choice. pad_id: token used for left padding.
        cache_kw: the forward keyword of the KV cache.
        max_batch_size: rows decoded together. max_queue: waiting requests before RateLimited.
        model_lock: held around every use of the model, shared with adapter loading.
        num_threads: torch threads of the engine's own thread (OpenMP counts are per thread).
        on_batch: told the phase ("prefill", "decode") and rows of every forward pass.
    """

    def __init__(
        self,
        *,
        model: torch.nn.Module,
        activate: Callable[[str | None], AbstractContextManager[None]],
        vocab: Vocab,
        grammars: GrammarBook,
        stop_ids: set[int],
        pad_id: int,
        cache_kw: str,
        max_batch_size: int,
        max_queue: int,
        model_lock: threading.RLock,
        num_threads: int,
        on_batch: Callable[[str, int], None] | None = None,
    ) -> None:
        self._model = model
        self._activate = activate
        self._vocab = vocab
        self._grammars = grammars
        self._stop_ids = stop_ids
        self._pad_id = pad_id
        self._cache_kw = cache_kw
        self._max_batch = max_batch_size
        self._max_queue = max_queue
        self._model_lock = model_lock
        self._num_threads = num_threads
        self._on_batch = on_batch or (lambda phase, rows: None)
        self._waiting: deque[Job] = deque()
        self._groups: dict[str | None, _Group] = {}
        self._inflight: Counter[str | None] = Counter()  # unfinished requests per adapter
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="openrft-engine", daemon=True)
        self._thread.start()

    def submit(self, job: Job, *, bounded: bool = True) -> None:
        """Queue `job`; RateLimited if it would wait behind `max_queue` others (unless not `bounded`)."""
        with self._wake:
            if self._closed:
                raise Unavailable("the model is being unloaded; retry")
            if bounded and len(self._waiting) >= self._max_queue and not self._has_room(job):
                raise RateLimited(
                    f"too many requests waiting ({len(self._waiting)}); retry shortly",
                    retry_after=1.0,
                )
            self._waiting.append(job)
            self._inflight[job.adapter] += 1
            self._wake.notify()

    def cancel(self, job: Job) -> None:
        """Stop `job`: a waiting one leaves the queue now, a running one at the next step."""
        job.cancelled = True
        with self._wake:
            if job in self._waiting:
                self._waiting.remove(job)
        self._release(job)

    def pending(self, adapter: str | None) -> bool:
        """Whether any request for `adapter` is waiting or running."""
        with self._wake:
            return self._inflight[adapter] > 0

    def _release(self, job: Job) -> None:
        with self._wake:
            if not job.released:
                job.released = True
                self._inflight[job.adapter] -= 1

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=10)

    # -- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        torch.set_num_threads(self._num_threads)  # this thread only: the caller's is untouched
        with torch.inference_mode():
            while True:
                with self._wake:
                    while not self._closed and not self._waiting and not self._running_rows():
                        self._wake.wait()
                    if self._closed:
                        self._fail_all(Unavailable("the model was unloaded; retry"))
                        return
                    admitted = self._admit()
                self._drop_cancelled()
                for adapter, jobs in _by_adapter(admitted):
                    self._guarded(jobs, lambda a=adapter, j=jobs: self._prefill(a, j))
                for adapter, group in list(self._groups.items()):
                    if group.rows:
                        jobs = list(dict.fromkeys(r.job for r in group.rows))
                        self._guarded(jobs, lambda a=adapter, g=group: self._step(a, g))

    def _fail_all(self, exc: Exception) -> None:
        # Called under the lock at shutdown: nobody may wait forever on a closed engine.
        jobs = list(self._waiting) + [r.job for g in self._groups.values() for r in g.rows]
        self._waiting.clear()
        self._groups.clear()
        for job in dict.fromkeys(jobs):
            _deliver(job, exc)

    def _running_rows(self) -> int:
        return sum(len(g.rows) for g in list(self._groups.values()))

    def _has_room(self, job: Job) -> bool:
        # Whether `job` gets rows at the next step without waiting (called under the lock).
        reserved = self._running_rows() + sum(j.n for j in self._waiting)
        return reserved == 0 or reserved + job.n <= self._max_batch

    def _admit(self) -> list[Job]:
        # Strict FIFO: a large request at the head waits for room rather than being overtaken.
        admitted: list[Job] = []
        used = self._running_rows()
        while self._waiting:
            n = self._waiting[0].n
            if used > 0 and used + n > self._max_batch:
                break
            admitted.append(self._waiting.popleft())
            used += n
        return admitted

    def _guarded(self, jobs: list[Job], work: Callable[[], None]) -> None:
        # A failing forward fails its requests, never the thread that serves everyone else.
        try:
            work()
        except Exception as exc:
            log.exception("generation failed")
            for group in self._groups.values():
                self._remove_jobs(group, set(jobs))
            for job in jobs:
                self._release(job)
                _deliver(job, exc)

    def _drop_cancelled(self) -> None:
        for group in self._groups.values():
            gone = {r.job for r in group.rows if r.job.cancelled}
            if gone:
                self._remove_jobs(group, gone)

    def _remove_jobs(self, group: _Group, jobs: set[Job]) -> None:
        keep = [i for i, r in enumerate(group.rows) if r.job not in jobs]
        group.rows = [group.rows[i] for i in keep]
        if group.kv is not None:
            group.kv.keep(keep)
        if not group.rows:
            group.kv = None

    def _prefill(self, adapter: str | None, jobs: list[Job]) -> None:
        with self._model_lock, self._activate(adapter):
            logits, kv = KVBatch.prefill(
                self._model,
                [j.prompt_ids for j in jobs],
                pad_id=self._pad_id,
                cache_kw=self._cache_kw,
            )  # (J, V)
        self._on_batch("prefill", len(jobs))
        # One prefill per prompt; its cache row is repeated for each of the job's n choices.
        expand = [k for k, job in enumerate(jobs) for _ in range(job.n)]
        rows = [self._new_row(job, i) for job in jobs for i in range(job.n)]
        kv.keep(expand)
        alive = self._advance(rows, logits[expand])
        kv.keep(alive)
        group = self._groups.setdefault(adapter, _Group())
        if group.kv is None:
            group.kv = kv
        else:
            group.kv.extend(kv)
        group.rows += [rows[i] for i in alive]

    def _step(self, adapter: str | None, group: _Group) -> None:
        assert group.kv is not None, "a group with rows has a cache"
        tokens = torch.tensor([r.token_ids[-1] for r in group.rows], dtype=torch.long)
        with self._model_lock, self._activate(adapter):
            logits = group.kv.decode(self._model, tokens, cache_kw=self._cache_kw)  # (B, V)
        self._on_batch("decode", len(group.rows))
        alive = self._advance(group.rows, logits)
        group.rows = [group.rows[i] for i in alive]
        group.kv.keep(alive)
        if not group.rows:
            group.kv = None

    def _new_row(self, job: Job, index: int) -> Row:
        sampled = not job.sampling.greedy
        return Row(
            job=job,
            index=index,
            key=row_key(job.seed, index) if sampled else None,
            vocab=self._vocab,
            constraint=self._grammars.matcher(job.grammar) if job.grammar is not None else None,
        )

    def _advance(self, rows: list[Row], logits: torch.Tensor) -> list[int]:
        """Sample one token for every row of `logits` (B, V); return the rows still running."""
        logits = logits.float().cpu()
        logprobs = torch.log_softmax(logits, dim=-1)  # (B, V) raw model log-probabilities
        temperatures = [r.job.sampling.temperature for r in rows]
        entropies = None
        if any(r.job.entropy for r in rows):
            entropies = sampling_entropy(logits, temperatures, logprobs)
        constrained = [i for i, r in enumerate(rows) if r.constraint is not None]
        early = [i for i, r in enumerate(rows) if len(r.token_ids) < r.job.sampling.min_tokens]
        if constrained or early:
            logits = logits.clone()  # masks must not leak into the reported log-probabilities
        if constrained:
            self._grammars.apply(logits, constrained, [rows[i].constraint for i in constrained])
        if early:  # min_tokens: no stop token yet
            logits[torch.tensor(early).unsqueeze(1), torch.tensor(sorted(self._stop_ids))] = -inf
        tokens = sample(
            logits,
            temperatures=temperatures,
            top_ps=[r.job.sampling.top_p for r in rows],
            keys=[r.key for r in rows],
            counters=[len(r.token_ids) for r in rows],
        )
        chosen = logprobs[torch.arange(len(rows)), torch.tensor(tokens)].tolist()  # (B,)
        k = max(r.job.sampling.top_logprobs for r in rows)
        tops = top_logprobs(logprobs, k) if k else None
        deltas: dict[Job, list[ChoiceDelta]] = {}
        for i, row in enumerate(rows):
            top = (tops[0][i], tops[1][i]) if tops else None
            entropy = entropies[i] if entropies is not None else None
            deltas.setdefault(row.job, []).append(
                row.advance(tokens[i], chosen[i], top, self._stop_ids, entropy)
            )
        self._emit(rows, deltas)
        return [i for i, r in enumerate(rows) if r.finish_reason is None]

    def _emit(self, rows: list[Row], deltas: dict[Job, list[ChoiceDelta]]) -> None:
        for row in rows:
            if row.finish_reason is not None:
                row.job.done[row.index] = row.completion()
        out: list[tuple[Job, object]] = []
        for job, items in deltas.items():
            if job.stream:
                out.append((job, items))
            if all(c is not None for c in job.done):
                choices = [c for c in job.done if c is not None]
                usage = Usage(
                    prompt_tokens=len(job.prompt_ids),
                    completion_tokens=sum(len(c.token_ids) for c in choices),
                )
                self._release(job)
                out.append((job, GenerationResult(choices=choices, usage=usage)))
        _flush(out)


def _deliver(job: Job, item: object) -> None:
    if job.cancelled:
        return
    try:
        job.sink(item)
    except Exception:  # the consumer is gone (its event loop closed): stop its rows
        job.cancelled = True


def _flush(out: list[tuple[Job, object]]) -> None:
    batched: list[tuple[AsyncSink, object]] = []
    owners: dict[int, Job] = {}
    for job, item in out:
        if job.cancelled:
            continue
        if isinstance(job.sink, AsyncSink):
            batched.append((job.sink, item))
            owners[id(job.sink)] = job
        else:
            _deliver(job, item)
    for sink in deliver_batched(batched):
        owners[id(sink)].cancelled = True


def _by_adapter(jobs: list[Job]) -> Iterator[tuple[str | None, list[Job]]]:
    groups: dict[str | None, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.adapter, []).append(job)
    yield from groups.items()
