"""An optional vLLM backend behind the same interface as `Engine`, for GPUs.

UNTESTED: vLLM is neither installed nor usable on the CPU machines this project
is built on, and the lent GPU machines have no vLLM either (DESIGN.md Decision
15). It is written against vLLM's documented `AsyncLLM`/`LLM` APIs (v0.8+) and
kept small so it can be checked by reading. Known gaps: no xgrammar bitmask of
ours (vLLM's own guided decoding is used), `TokenStream` semantics are
approximated by an async generator, logprob bytes come from the token text.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ._params import (
    ChoiceDelta,
    Completion,
    GenerationRequest,
    GenerationResult,
    SamplingParams,
    TokenLogprob,
    TopLogprob,
    Usage,
    json_schema,
)

__all__ = ["VLLMEngine"]


class VLLMEngine:
    """The `InferenceEngine` interface on vLLM. Build with `VLLMEngine.from_pretrained(source)`."""

    def __init__(self, *, engine: Any, tokenizer: Any, context_length: int) -> None:
        self._engine = engine  # vllm.v1.engine.async_llm.AsyncLLM
        self.tokenizer = tokenizer
        self.context_length = context_length
        self._loras: dict[str, Any] = {}
        self._ids = itertools.count(1)

    @classmethod
    def from_pretrained(
        cls, source: str | Path, *, max_lora_rank: int = 32, **engine_args: Any
    ) -> VLLMEngine:
        from vllm import AsyncEngineArgs  # imported lazily: an optional extra
        from vllm.v1.engine.async_llm import AsyncLLM

        args = AsyncEngineArgs(
            model=str(source), enable_lora=True, max_lora_rank=max_lora_rank, **engine_args
        )
        engine = AsyncLLM.from_engine_args(args)
        config = engine.model_config
        return cls(engine=engine, tokenizer=engine.tokenizer, context_length=config.max_model_len)

    @property
    def adapters(self) -> list[str]:
        return sorted(self._loras)

    def load_adapter(self, name: str, path: str | Path) -> None:
        from vllm.lora.request import LoRARequest

        self._loras[name] = LoRARequest(name, len(self._loras) + 1, str(path))

    def unload_adapter(self, name: str) -> None:
        self._loras.pop(name, None)

    def stream(self, request: GenerationRequest) -> _VLLMStream:
        return _VLLMStream(self, request)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        stream = self.stream(request)
        texts: dict[int, list[ChoiceDelta]] = {}
        async for delta in stream:
            texts.setdefault(delta.index, []).append(delta)
        choices = [_completion(i, ds) for i, ds in sorted(texts.items())]
        assert stream.usage is not None
        return GenerationResult(choices=choices, usage=stream.usage)

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
        """As `Engine.generate_groups`: `seeds[i]` seeds prompt i; without `seeds`,
        `sampling.seed` + i (prompts must not share one stream), or random.
        `entropies` is not honoured: vLLM returns no entropies, so completions carry
        None and the trainer computes them in its own forward pass."""

        async def one(i: int, ids: Sequence[int]) -> list[Completion]:
            seed = (
                seeds[i]
                if seeds is not None
                else (None if sampling.seed is None else sampling.seed + i)
            )
            params = replace(sampling, n=n, seed=seed)
            return (
                await self.generate(
                    GenerationRequest(prompt=list(ids), sampling=params, adapter=adapter)
                )
            ).choices

        async def all_groups() -> list[list[Completion]]:
            return list(await asyncio.gather(*[one(i, p) for i, p in enumerate(prompts)]))

        return asyncio.run(all_groups())

    def close(self) -> None:
        self._engine.shutdown()

    def _vllm_params(self, sampling: SamplingParams, max_tokens: int) -> Any:
        from vllm import SamplingParams as VSampling
        from vllm.sampling_params import GuidedDecodingParams

        schema = json_schema(sampling.response_format)
        guided = None
        if schema is not None:
            guided = (
                GuidedDecodingParams(json_object=True)
                if schema is True
                else GuidedDecodingParams(json=schema)
            )
        return VSampling(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=sampling.seed,
            stop=list(sampling.stop),
            max_tokens=max_tokens,
            min_tokens=sampling.min_tokens,
            guided_decoding=guided,
            logprobs=max(sampling.top_logprobs, 1),
            output_kind=1,  # DELTA outputs
        )


class _VLLMStream:
    def __init__(self, owner: VLLMEngine, request: GenerationRequest) -> None:
        self._owner = owner
        self._request = request
        self.usage: Usage | None = None
        self._gen: AsyncIterator[ChoiceDelta] | None = None

    def __aiter__(self) -> AsyncIterator[ChoiceDelta]:
        self._gen = self._run()
        return self._gen

    async def aclose(self) -> None:
        if self._gen is not None:
            await self._gen.aclose()  # type: ignore[attr-defined]

    async def _run(self) -> AsyncIterator[ChoiceDelta]:
        owner, req = self._owner, self._request
        tok = owner.tokenizer
        if req.messages is not None:
            ids = tok.apply_chat_template(
                list(req.messages), tokenize=True, add_generation_prompt=True
            )
        else:
            ids = tok.encode(req.prompt) if isinstance(req.prompt, str) else list(req.prompt or [])
        room = owner.context_length - len(ids)
        params = owner._vllm_params(req.sampling, min(req.sampling.max_tokens or room, room))
        lora = owner._loras.get(req.adapter) if req.adapter else None
        completion_tokens = 0
        async for out in owner._engine.generate(
            {"prompt_token_ids": list(ids)},
            params,
            f"openrft-{next(owner._ids)}",
            lora_request=lora,
        ):
            for c in out.outputs:
                completion_tokens += len(c.token_ids)
                yield ChoiceDelta(
                    index=c.index,
                    text=c.text,
                    token_ids=list(c.token_ids),
                    logprobs=_logprobs(c, req.sampling.top_logprobs)
                    if req.sampling.logprobs
                    else [],
                    finish_reason=c.finish_reason
                    if c.finish_reason in ("stop", "length")
                    else None,
                )
        self.usage = Usage(prompt_tokens=len(ids), completion_tokens=completion_tokens)


def _logprobs(c: Any, k: int) -> list[TokenLogprob]:
    out = []
    for token_id, table in zip(c.token_ids, c.logprobs or [], strict=False):
        ranked = sorted(table.items(), key=lambda kv: -kv[1].logprob)[:k]
        tops = [
            TopLogprob(
                token=v.decoded_token or "",
                logprob=v.logprob,
                bytes=list((v.decoded_token or "").encode()),
            )
            for _, v in ranked
        ]
        own = table[token_id]
        out.append(
            TokenLogprob(
                token=own.decoded_token or "",
                logprob=own.logprob,
                bytes=list((own.decoded_token or "").encode()),
                top_logprobs=tops,
            )
        )
    return out


def _completion(index: int, deltas: list[ChoiceDelta]) -> Completion:
    ids = [t for d in deltas for t in d.token_ids]
    logprobs = [e for d in deltas for e in d.logprobs]
    return Completion(
        index=index,
        text="".join(d.text for d in deltas),
        token_ids=ids,
        token_logprobs=[e.logprob for e in logprobs] if len(logprobs) == len(ids) else [],
        finish_reason=deltas[-1].finish_reason or "length",
        logprobs=logprobs or None,
    )
