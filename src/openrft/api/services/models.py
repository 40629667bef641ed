"""Which engine answers a model id: an LRU of loaded engines and of their LoRA adapters.

DESIGN.md Decision 3: fine-tuned models and checkpoints are loaded from the store
the first time they are asked for, and the least recently used are evicted past a
budget. One engine is kept per fully resolved weight folder (a base model, or a
model fine-tuned with full weights, Decision 5); a LoRA model is an adapter on the
engine of the weights it was trained on. Requests hold a `Lease` while they run, so
nothing they use is evicted under them. Decision 11: `openrft.inference` (torch) is
imported only when the first model is loaded.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import itertools
import logging
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from openrft.errors import Conflict, OpenRFTError, Unavailable
from openrft.store import ModelRow, Store

if TYPE_CHECKING:
    from openrft.inference import InferenceEngine

__all__ = ["Lease", "ModelServer", "WeightsKey", "resolve_target"]

log = logging.getLogger("openrft.api")


@dataclass(frozen=True, slots=True)
class WeightsKey:
    """Complete model weights: what `from_pretrained(root)` loads, then `merged` adapters folded in."""

    root: str
    merged: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Target:
    """What serving a model id takes: an engine on `weights`, plus a LoRA adapter folder or None."""

    weights: WeightsKey
    adapter: str | None


def _local(source: str) -> str:
    # One engine for a folder however it was registered (`tiny` and `org/tiny` may share one).
    return os.path.realpath(source) if os.path.exists(source) else source


def _weights(store: Store, row: ModelRow) -> WeightsKey:
    """The weights `row` stands for, following the rule of `training._model.resolve_weights`."""
    if row.kind == "base":
        return WeightsKey(_local(row.source))
    path = _local(str(store.blobs.path(row.source)))
    if row.weights_format == "full":
        return WeightsKey(path)
    below = _below(store, row)
    return WeightsKey(below.root, (*below.merged, path))


def _below(store: Store, row: ModelRow) -> WeightsKey:
    """The weights an adapter model was trained on: its fine-tuned parent's, else its base's."""
    parent_id = (row.details or {}).get("parent")
    parent = store.models.get_any(parent_id) if parent_id else None
    if parent is not None:
        return _weights(store, parent)
    base = store.models.get_base(row.base_model or "")
    if base is None:
        raise Unavailable(
            f"The base model {row.base_model!r} of '{row.id}' is not registered", param="model"
        )
    return _weights(store, base)


def resolve_target(store: Store, row: ModelRow) -> Target:
    """An adapter model is served as an adapter on the engine of its parent's weights."""
    if row.kind != "base" and row.weights_format == "adapter":
        return Target(_below(store, row), _local(str(store.blobs.path(row.source))))
    return Target(_weights(store, row), None)


@dataclass(eq=False)
class _Adapter:
    name: str
    leases: int = 0


@dataclass(eq=False)
class _Loaded:
    engine: InferenceEngine
    leases: int = 0
    adapters: OrderedDict[str, _Adapter] = field(default_factory=OrderedDict)


class Lease:
    """A running request's hold on an engine (and adapter); `release()` once it is done.

    Dropping an unreleased lease releases it too, so a response that never ran
    cannot pin a model in memory forever.
    """

    def __init__(self, loaded: _Loaded, adapter: _Adapter | None) -> None:
        self.engine = loaded.engine
        self.adapter = adapter.name if adapter is not None else None
        loaded.leases += 1
        if adapter is not None:
            adapter.leases += 1
        self._release = weakref.finalize(self, _unlease, loaded, adapter)

    def release(self) -> None:
        self._release()


def _unlease(loaded: _Loaded, adapter: _Adapter | None) -> None:
    loaded.leases -= 1
    if adapter is not None:
        adapter.leases -= 1


class BatchSizes:
    """Rows per forward pass of every engine this server has run, by phase, as Prometheus
    histogram buckets; kept here, not in the engines, so an evicted engine's passes stay
    counted. Observed from engine threads, read at scrape time."""

    BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
    _BOUNDS = [str(float(b)) for b in BUCKETS] + ["+Inf"]  # Prometheus's `le` labels

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {phase: [0] * (len(self.BUCKETS) + 1) for phase in ("prefill", "decode")}
        self._sums = {phase: 0 for phase in self._counts}

    def observe(self, phase: str, rows: int) -> None:
        slot = bisect.bisect_left(self.BUCKETS, rows)
        with self._lock:
            self._counts[phase][slot] += 1
            self._sums[phase] += rows

    def snapshot(self) -> dict[str, tuple[list[tuple[str, int]], int]]:
        """Per phase: cumulative `(upper bound, count)` buckets ending in "+Inf", and the sum."""
        out = {}
        with self._lock:
            for phase, counts in self._counts.items():
                out[phase] = (list(zip(self._BOUNDS, itertools.accumulate(counts), strict=True)),
                              self._sums[phase])  # fmt: skip
        return out


class ModelServer:
    """Loads, caches and evicts the engines that serve `/v1/chat/completions` and friends.

    Parameters:
        store: where model rows and weight blobs live.
        max_loaded_models: engines (complete weights) kept in memory, least recently used evicted.
        max_loaded_adapters: LoRA adapters kept per engine, least recently used evicted.
        engine_options: keyword arguments of `Engine.from_pretrained` (batch size, queue bound, threads).
        open_engine: builds the engine for some weights; by default this package's `Engine`.
    """

    def __init__(
        self,
        *,
        store: Store,
        max_loaded_models: int = 4,
        max_loaded_adapters: int = 8,
        engine_options: dict[str, Any] | None = None,
        open_engine: Callable[[WeightsKey, dict[str, Any]], InferenceEngine] | None = None,
    ) -> None:
        self._store = store
        self._open = open_engine or _open_engine
        self._max_models = max(1, max_loaded_models)
        self._max_adapters = max(1, max_loaded_adapters)
        self.batch_sizes = BatchSizes()
        self._options = {**(engine_options or {}), "on_batch": self.batch_sizes.observe}
        self._engines: OrderedDict[WeightsKey, _Loaded] = OrderedDict()
        # Completion tokens served since start, read by `/metrics`.
        self.generated_tokens = 0
        self._loading = asyncio.Lock()  # loads and evictions happen one at a time

    @property
    def loaded(self) -> dict[WeightsKey, list[str]]:
        """The engines in memory (least recently used first) and their adapter folders."""
        return {key: list(entry.adapters) for key, entry in self._engines.items()}

    async def find(self, project: str, model_id: str) -> ModelRow:
        """The model row, or NotFound `model_not_found` naming `model`."""
        return await anyio.to_thread.run_sync(self._store.models.get, project, model_id)

    async def acquire(self, row: ModelRow) -> Lease:
        """A lease on the engine (and adapter) serving `row`, loading them if needed."""
        target = await anyio.to_thread.run_sync(resolve_target, self._store, row)
        lease = self._lease(target)
        if lease is not None:
            return lease
        async with self._loading:
            lease = self._lease(target)
            if lease is None:
                await self._load(row.id, target)
                lease = self._lease(target)
        assert lease is not None, "a target just loaded can be leased"
        return lease

    def close(self) -> None:
        """Stop every engine (requests in flight get no further tokens)."""
        while self._engines:
            _, entry = self._engines.popitem()
            entry.engine.close()

    def _lease(self, target: Target) -> Lease | None:
        # Synchronous on the event loop: nothing is evicted between this check and the lease.
        entry = self._engines.get(target.weights)
        if entry is None:
            return None
        adapter = None
        if target.adapter is not None:
            adapter = entry.adapters.get(target.adapter)
            if adapter is None:
                return None
            entry.adapters.move_to_end(target.adapter)
        self._engines.move_to_end(target.weights)
        return Lease(entry, adapter)

    async def _load(self, model_id: str, target: Target) -> None:
        entry = self._engines.get(target.weights)
        if entry is None:
            await self._evict_engines()
            engine = await _guarded(model_id, self._open, target.weights, self._options)
            entry = self._engines[target.weights] = _Loaded(engine)
            log.info("loaded %s for %s", target.weights, model_id)
        if target.adapter is not None and target.adapter not in entry.adapters:
            await self._evict_adapters(entry)
            name = "lora_" + hashlib.sha1(target.adapter.encode()).hexdigest()[:16]
            await _guarded(model_id, entry.engine.load_adapter, name, target.adapter)
            entry.adapters[target.adapter] = _Adapter(name)
            log.info("loaded adapter %s for %s", target.adapter, model_id)

    async def _evict_engines(self) -> None:
        while len(self._engines) >= self._max_models:
            idle = next((k for k, e in self._engines.items() if e.leases == 0), None)
            if idle is None:
                return  # every engine is busy: go over budget rather than fail requests
            entry = self._engines.pop(idle)
            log.info("evicting %s", idle)
            await anyio.to_thread.run_sync(entry.engine.close)

    async def _evict_adapters(self, entry: _Loaded) -> None:
        while len(entry.adapters) >= self._max_adapters:
            idle = next((k for k, a in entry.adapters.items() if a.leases == 0), None)
            if idle is None:
                return
            adapter = entry.adapters.pop(idle)
            log.info("evicting adapter %s", idle)
            try:
                await anyio.to_thread.run_sync(entry.engine.unload_adapter, adapter.name)
            except Conflict:  # still running for a request that outlived its lease
                entry.adapters[idle] = adapter
                return


async def _guarded(model_id: str, func: Any, *args: Any) -> Any:
    """Run a slow load in a thread; a failure is a 503 naming the model, not a crash."""
    try:
        return await anyio.to_thread.run_sync(func, *args)
    except OpenRFTError:
        raise
    except Exception as exc:
        log.exception("loading %s failed", model_id)
        raise Unavailable(
            f"The model '{model_id}' could not be loaded: {exc}", param="model"
        ) from exc


def _quiet_transformers() -> None:
    """A server's log is records, not progress bars: transformers' loading bars go, and its
    messages reach the server's handlers (text or JSON) instead of a handler of its own."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()


def _open_engine(key: WeightsKey, options: dict[str, Any]) -> InferenceEngine:
    from openrft.inference import Engine

    _quiet_transformers()
    if not key.merged:
        return Engine.from_pretrained(key.root, **options)
    return _merged_engine(key, options)


def _merged_engine(key: WeightsKey, options: dict[str, Any]) -> InferenceEngine:
    """An engine on `root` with adapters merged in: a LoRA model trained on a LoRA parent
    (called from `_open_engine`, which has quieted transformers already)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from openrft.inference import Engine

    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(key.root, dtype=dtype)
    for folder in key.merged:
        model = PeftModel.from_pretrained(model, folder).merge_and_unload()
    model = model.to("cuda" if cuda else "cpu").eval()
    tokenizer = AutoTokenizer.from_pretrained(key.root)
    return Engine(model=model, tokenizer=tokenizer, **options)
