"""The inference engine: one base model, its LoRA adapters, batched generation.

Serving (inside the API server) and rollouts (inside a training worker, on the
very weights being trained: DESIGN.md Decision 3) use this same class.
"""

from __future__ import annotations

import asyncio
import queue
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from openrft.errors import Conflict, InvalidRequest

from ._adapters import AdapterSet
from ._constrained import GrammarBook
from ._detokenize import Vocab
from ._kvcache import cache_keyword
from ._params import Completion, GenerationRequest, GenerationResult, SamplingParams, json_schema
from ._rows import Job
from ._scheduler import Scheduler
from ._stream import AsyncSink, TokenStream

__all__ = ["Engine"]


class Engine:
    """Batched generation with a base model and any number of LoRA adapters.

    Serving, from a running event loop::

        async with engine.stream(request) as stream:  # raises InvalidRequest/RateLimited here
            async for delta in stream:                 # ChoiceDelta, choices interleaved
                ...
        stream.usage                                   # prompt and completion tokens

    Leaving the block early, `await stream.aclose()`, or cancelling the task
    that awaits it cancels the request; its rows are free by the next step.
    `await engine.generate(request)` returns the whole GenerationResult. A
    trainer calls `engine.generate_groups(prompt_ids, n, sampling)` from its own
    thread. A background thread runs every forward pass (continuous batching).

    Parameters:
        model: a causal LM already in memory (a PeftModel too); it is used as is, never copied.
        tokenizer: its tokenizer, with a chat template for `messages` requests.
        max_batch_size: rows (choices) decoded together in one forward pass.
        max_queue: requests allowed to wait for a row; past it `stream`/`generate` raise RateLimited.
        num_threads: torch threads of the engine's forward passes (Decision 11), set in its own
            thread only; None: one for tiny models, else torch's current setting.
        context_length: prompt + completion limit; defaults to the model's max positions.
        on_batch: called from the engine's thread after every forward pass with its phase
            ("prefill" or "decode") and its rows, for the server's batch-size metrics.
    """

    def __init__(
        self,
        *,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        max_batch_size: int = 64,
        max_queue: int = 256,
        num_threads: int | None = None,
        context_length: int | None = None,
        on_batch: Callable[[str, int], None] | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        config = model.config
        self.context_length = context_length or int(
            getattr(config, "max_position_embeddings", 2048)
        )
        self._lock = threading.RLock()
        self._adapters = AdapterSet(model=model, lock=self._lock)
        self._stop_ids = _stop_ids(model, tokenizer)
        vocab_size = int(model.get_output_embeddings().weight.shape[0])
        special = set(tokenizer.all_special_ids) | {
            i for i, t in tokenizer.added_tokens_decoder.items() if t.special
        }
        self._grammars = GrammarBook(
            tokenizer=tokenizer,
            vocab_size=vocab_size,
            stop_ids=sorted(self._stop_ids),
            special_ids=special,
        )
        self._vocab = Vocab(
            token_bytes=self._grammars.info.decoded_vocab, special_ids=special, size=vocab_size
        )
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self._stop_ids)
        self._scheduler = Scheduler(
            model=_Forward(self._adapters),
            activate=self._adapters.activate,
            vocab=self._vocab,
            grammars=self._grammars,
            stop_ids=self._stop_ids,
            pad_id=pad,
            cache_kw=cache_keyword(model),
            max_batch_size=max_batch_size,
            max_queue=max_queue,
            model_lock=self._lock,
            num_threads=num_threads or _auto_threads(model, max_batch_size),
            on_batch=on_batch,
        )

    @classmethod
    def from_pretrained(
        cls,
        source: str | Path,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        **options: Any,
    ) -> Engine:
        """Load a local folder or Hugging Face id: CUDA + bf16 when available, else CPU fp32 (Decision 15).

        `options` are the keyword arguments of `Engine(...)` other than model and tokenizer.
        """
        cuda = torch.cuda.is_available()
        device = torch.device(device or ("cuda" if cuda else "cpu"))
        if dtype is None:
            bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
            dtype = torch.bfloat16 if bf16 else torch.float32
        tokenizer = AutoTokenizer.from_pretrained(str(source))
        model = AutoModelForCausalLM.from_pretrained(str(source), dtype=dtype).to(device).eval()
        return cls(model=model, tokenizer=tokenizer, **options)

    @property
    def model(self) -> torch.nn.Module:
        """The module forward passes run on (wrapped in a PeftModel once adapters are loaded)."""
        return self._adapters.model

    @property
    def stop_token_ids(self) -> list[int]:
        """The token ids that end a completion (the model's eos ids and the tokenizer's)."""
        return sorted(self._stop_ids)

    @property
    def adapters(self) -> list[str]:
        return self._adapters.names

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Serve the PEFT LoRA adapter saved at `path` as `name`."""
        self._adapters.load(name, path)

    def unload_adapter(self, name: str) -> None:
        """Forget adapter `name`; Conflict while requests for it are waiting or running."""
        if self._scheduler.pending(name):
            raise Conflict(f"adapter {name!r} has requests in flight", param="model")
        self._adapters.unload(name)

    def encode(self, request: GenerationRequest) -> list[int]:
        """The prompt's token ids (the chat template applied to `messages`)."""
        if request.messages is not None:
            messages = [_plain_message(m) for m in request.messages]
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        if isinstance(request.prompt, str):
            return list(self.tokenizer.encode(request.prompt, add_special_tokens=True))
        ids = [int(i) for i in request.prompt or []]
        if not all(0 <= i < len(self._vocab.token_bytes) for i in ids):
            raise InvalidRequest("prompt holds a token id outside the vocabulary", param="prompt")
        return ids

    def stream(self, request: GenerationRequest) -> TokenStream:
        """Start `request` and return its stream of ChoiceDelta; call from a running event loop.

        Validation and queueing happen now, so InvalidRequest, NotFound and
        RateLimited are raised here, before any response has started.
        """
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[object] = asyncio.Queue()
        job = self._job(request, sink=AsyncSink(loop, items), stream=True)
        self._scheduler.submit(job)
        return TokenStream(queue=items, cancel=lambda: self._scheduler.cancel(job))

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Run `request` to the end; cancelling the awaiting task cancels the request."""
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[object] = asyncio.Queue()
        job = self._job(request, sink=AsyncSink(loop, items), stream=False)
        self._scheduler.submit(job)
        try:
            item = await items.get()
        except asyncio.CancelledError:
            self._scheduler.cancel(job)
            raise
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, GenerationResult)
        return item

    def generate_group(
        self,
        prompt_ids: Sequence[int],
        n: int,
        sampling: SamplingParams,
        *,
        adapter: str | None = None,
    ) -> list[Completion]:
        """n completions of one prompt, prefilled once (for GRPO); blocks the calling thread."""
        return self.generate_groups([prompt_ids], n, sampling, adapter=adapter)[0]

    def generate_groups(
        self,
        prompts: Sequence[Sequence[int]],
        n: int,
        sampling: SamplingParams,
        *,
        adapter: str | None = None,
        seeds: Sequence[int] | None = None,
        entropies: bool = False,
    ) -> list[list[Completion]]:
        """n completions for each prompt, all batched together; blocks the calling thread.

        `seeds[i]` seeds prompt i (its choice j draws from a random stream keyed by
        (seeds[i], j): Decision 13); without `seeds`, `sampling.seed` + i, or random.
        `entropies`: each completion carries its tokens' sampling entropies.
        The trainer's requests skip the queue bound: it waits rather than fails.
        On return, a PeftModel the engine was built on has its own adapter active
        again; train only while no other request runs on this engine.
        """
        results: queue.SimpleQueue[object] = queue.SimpleQueue()
        jobs = []
        for i, ids in enumerate(prompts):
            seed = (
                seeds[i]
                if seeds is not None
                else (None if sampling.seed is None else sampling.seed + i)
            )
            params = replace(sampling, n=n, seed=seed)
            request = GenerationRequest(prompt=list(ids), sampling=params, adapter=adapter)
            sink = (lambda k: lambda item: results.put((k, item)))(i)
            job = self._job(request, sink=sink, stream=False)
            job.entropy = entropies
            jobs.append(job)
        for job in jobs:
            self._scheduler.submit(job, bounded=False)
        out: list[list[Completion]] = [[] for _ in jobs]
        for _ in jobs:
            k, item = results.get()
            if isinstance(item, BaseException):
                for job in jobs:
                    self._scheduler.cancel(job)
                raise item
            assert isinstance(item, GenerationResult)
            out[k] = item.choices
        self._adapters.restore()
        return out

    def close(self) -> None:
        """Stop the scheduler thread (requests in flight get no further tokens)."""
        self._scheduler.close()

    def _job(self, request: GenerationRequest, *, sink: Any, stream: bool) -> Job:
        if request.adapter is not None and request.adapter not in self.adapters:
            raise InvalidRequest(
                f"adapter {request.adapter!r} is not loaded", param="model", code="model_not_found"
            )
        ids = self.encode(request)
        param = "messages" if request.messages is not None else "prompt"
        if not ids:
            raise InvalidRequest("the prompt is empty", param=param)
        room = self.context_length - len(ids)
        if room < 1:
            raise InvalidRequest(
                f"This model's maximum context length is {self.context_length} tokens. "
                f"However, your {param} resulted in {len(ids)} tokens.",
                param=param,
                code="context_length_exceeded",
            )
        sampling = request.sampling
        schema = json_schema(sampling.response_format)
        return Job(
            prompt_ids=ids,
            sampling=sampling,
            adapter=request.adapter,
            seed=sampling.seed if sampling.seed is not None else random.getrandbits(63),
            max_new_tokens=min(sampling.max_tokens or room, room),
            grammar=self._grammars.compile(schema) if schema is not None else None,
            sink=sink,
            stream=stream,
        )


class _Forward:
    """Calls whatever module the adapter set currently holds (it is rewrapped as adapters come and go)."""

    def __init__(self, adapters: AdapterSet) -> None:
        self._adapters = adapters

    def __call__(self, **kwargs: Any) -> Any:
        return self._adapters.model(**kwargs)

    @property
    def device(self) -> torch.device:
        return next(self._adapters.model.parameters()).device


def _auto_threads(model: torch.nn.Module, max_batch_size: int) -> int:
    # Measured on 2 shared cores: when a full decode step is under ~256 MFLOP (a ~1M-parameter
    # model), a second OpenMP thread saves less than its wake-ups cost, and when other
    # processes hold the cores it stalls each step for milliseconds; bigger models gain.
    flops = 2 * sum(p.numel() for p in model.parameters()) * max_batch_size
    return 1 if flops < 256e6 else torch.get_num_threads()


def _stop_ids(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    ids: set[int] = set()
    config = getattr(model, "generation_config", None)
    eos = getattr(config, "eos_token_id", None) if config is not None else None
    ids.update([eos] if isinstance(eos, int) else list(eos or []))
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("the model has no eos token: set generation_config.eos_token_id")
    return ids


def _plain_message(message: Mapping[str, Any]) -> dict[str, Any]:
    # OpenAI content may be a list of parts; the templates here take plain text.
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return {**message, "content": content or ""}
