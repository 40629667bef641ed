"""Serving throughput: the openrft engine against plain transformers, in one process run.

For 1, 8 and 32 concurrent streams, each stream sends requests one after another
(closed loop). "transformers" serves them with `model.generate` one request at a
time (what a naive server does); the engine batches them. Both decode greedily
on the same model and prompts, so both produce the same tokens. Also times
transformers' own continuous batching (`generate_batch`) on all requests at once.

    PYTHONPATH=src python benchmarks/serve.py [--model PATH] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
from transformers.generation.streamers import BaseStreamer

from openrft.inference import Engine, GenerationRequest, SamplingParams, build_tiny_model


@dataclass
class Run:
    tokens: int
    seconds: float
    ttfts: list[float]

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    def ttft(self, q: float) -> float:
        return (
            statistics.quantiles(self.ttfts, n=100)[int(q * 100) - 1]
            if len(self.ttfts) > 1
            else self.ttfts[0]
        )


def prompts(tokenizer: object, count: int) -> list[list[int]]:
    out = []
    for i in range(count):
        text = f"Question {i}: what is {i % 10}+{(i * 7) % 10}? " + "Think step by step. " * (i % 4)
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        out.append(tokenizer.encode(rendered, add_special_tokens=False))
    return out


class _FirstToken(BaseStreamer):
    """Records when `generate` produces its first new token (its first `put` is the prompt)."""

    def __init__(self) -> None:
        self.calls = 0
        self.first: float | None = None

    def put(self, value: torch.Tensor) -> None:
        self.calls += 1
        if self.calls == 2 and self.first is None:
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


async def run_transformers(model: object, work: list[list[list[int]]], max_tokens: int) -> Run:
    pool = ThreadPoolExecutor(max_workers=1)  # one request at a time, FIFO
    loop = asyncio.get_running_loop()
    tokens, ttfts = 0, []

    def one(ids: list[int]) -> tuple[int, float]:
        streamer = _FirstToken()
        out = model.generate(
            torch.tensor([ids]), do_sample=False, max_new_tokens=max_tokens, streamer=streamer
        )
        return out.shape[1] - len(ids), streamer.first or time.perf_counter()

    async def stream(requests: list[list[int]]) -> None:
        nonlocal tokens
        for ids in requests:
            start = time.perf_counter()
            n, first = await loop.run_in_executor(pool, one, ids)
            tokens += n
            ttfts.append(first - start)

    start = time.perf_counter()
    await asyncio.gather(*[stream(w) for w in work])
    pool.shutdown()
    return Run(tokens, time.perf_counter() - start, ttfts)


async def run_engine(engine: Engine, work: list[list[list[int]]], max_tokens: int) -> Run:
    tokens, ttfts = 0, []
    sampling = SamplingParams(temperature=0, max_tokens=max_tokens)

    async def stream(requests: list[list[int]]) -> None:
        nonlocal tokens
        for ids in requests:
            start = time.perf_counter()
            first = None
            async for delta in engine.stream(GenerationRequest(prompt=ids, sampling=sampling)):
                first = first or time.perf_counter()
                tokens += len(delta.token_ids)
            ttfts.append((first or time.perf_counter()) - start)

    start = time.perf_counter()
    await asyncio.gather(*[stream(w) for w in work])
    return Run(tokens, time.perf_counter() - start, ttfts)


def run_generate_batch(
    model: object, requests: list[list[int]], max_tokens: int, pad: int
) -> Run | str:
    config = GenerationConfig(
        max_new_tokens=max_tokens, do_sample=False, eos_token_id=258, pad_token_id=pad
    )
    try:
        model.generate_batch(inputs=requests[:2], generation_config=config)  # warm-up
        start = time.perf_counter()
        out = model.generate_batch(inputs=requests, generation_config=config)
        seconds = time.perf_counter() - start
    except Exception as exc:  # it is optional: report why it did not run
        return f"unavailable ({type(exc).__name__}: {str(exc)[:120]})"
    tokens = sum(len(o.generated_tokens) for o in out.values())
    return Run(tokens, seconds, [float("nan")])


def split(requests: list[list[int]], streams: int) -> list[list[list[int]]]:
    return [requests[i::streams] for i in range(streams)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder or hub id (default: a fresh tiny model)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--streams", default="1,8,32")
    parser.add_argument("--requests-per-stream", type=int, default=4)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)  # transformers' side; the engine gets the same
    source = args.model or str(build_tiny_model(Path(tempfile.mkdtemp()) / "tiny"))
    engine = Engine.from_pretrained(source, num_threads=args.threads, max_batch_size=64)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = (
        AutoModelForCausalLM.from_pretrained(source, dtype=engine.model.dtype)
        .to(engine.model.device)
        .eval()
    )
    print(
        f"model {source}: device {engine.model.device}, transformers threads "
        f"{torch.get_num_threads()}, engine threads {engine._scheduler._num_threads}, "
        f"max_tokens {args.max_tokens}"
    )
    header = (
        f"{'streams':>7} {'system':<22} {'tok/s':>8} {'p50 TTFT':>9} {'p95 TTFT':>9} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for streams in [int(s) for s in args.streams.split(",")]:
        requests = prompts(tokenizer, max(streams * args.requests_per_stream, 8))
        work = split(requests, streams)
        asyncio.run(run_engine(engine, split(requests[:2], 2), 4))  # warm-up
        with torch.inference_mode():
            base = asyncio.run(run_transformers(model, work, args.max_tokens))
        ours = asyncio.run(run_engine(engine, work, args.max_tokens))
        for name, r in (("transformers generate", base), ("openrft engine", ours)):
            ratio = r.tokens_per_s / base.tokens_per_s
            print(
                f"{streams:>7} {name:<22} {r.tokens_per_s:>8.0f} {r.ttft(0.5) * 1e3:>7.0f}ms "
                f"{r.ttft(0.95) * 1e3:>7.0f}ms {ratio:>5.2f}x"
            )
        if streams > 1:
            batch = run_generate_batch(model, requests, args.max_tokens, tokenizer.pad_token_id)
            if isinstance(batch, str):
                print(f"{streams:>7} {'generate_batch':<22} {batch}")
            else:
                print(
                    f"{streams:>7} {'generate_batch (all)':<22} {batch.tokens_per_s:>8.0f} {'-':>9} {'-':>9} "
                    f"{batch.tokens_per_s / base.tokens_per_s:>5.2f}x   engine/generate_batch "
                    f"{ours.tokens_per_s / batch.tokens_per_s:.2f}x"
                )
    engine.close()


if __name__ == "__main__":
    main()
