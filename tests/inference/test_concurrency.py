"""Streams under load: concurrent streams, the queue bound, and cancellation freeing rows."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from inference.engine_helpers import request, run
from openrft.errors import RateLimited, Unavailable
from openrft.inference import ChoiceDelta, Engine, TokenStream


async def _collect(
    stream: TokenStream,
) -> tuple[dict[int, str], dict[int, list[int]], list[ChoiceDelta]]:
    texts: dict[int, str] = {}
    tokens: dict[int, list[int]] = {}
    finals = []
    async for delta in stream:
        texts[delta.index] = texts.get(delta.index, "") + delta.text
        tokens.setdefault(delta.index, []).extend(delta.token_ids)
        if delta.finish_reason is not None:
            finals.append(delta)
    return texts, tokens, finals


def test_sixteen_concurrent_streams_equal_their_lone_results(engine: Engine) -> None:
    reqs = [
        request(f"stream {i}: " + "ab" * i, temperature=0, max_tokens=8 + 2 * i) for i in range(16)
    ]
    lone = [run(engine.generate(r)).choices[0] for r in reqs]

    async def staggered(i: int, req: Any) -> Any:
        # Later streams join a batch that is already decoding (continuous batching).
        await asyncio.sleep(0.003 * i)
        stream = engine.stream(req)
        return await _collect(stream), stream.usage

    async def together() -> list[Any]:
        return await asyncio.gather(*[staggered(i, r) for i, r in enumerate(reqs)])

    for ((texts, tokens, finals), usage), ref in zip(run(together()), lone, strict=True):
        assert tokens[0] == ref.token_ids and texts[0] == ref.text
        assert [f.finish_reason for f in finals] == [ref.finish_reason]
        assert usage is not None and usage.completion_tokens == len(ref.token_ids)


def test_n_streams_interleave_and_each_finishes(engine: Engine) -> None:
    async def go() -> Any:
        async with engine.stream(request("n!", temperature=1.0, seed=2, n=3, max_tokens=7)) as s:
            collected = await _collect(s)
        assert s.usage is not None
        assert s.usage.completion_tokens == sum(map(len, collected[1].values()))
        return collected

    texts, tokens, finals = run(go())
    assert sorted(texts) == [0, 1, 2] and sorted(f.index for f in finals) == [0, 1, 2]
    assert all(len(t) <= 7 for t in tokens.values())


def test_queue_bound_and_cancellation_free_the_slot(tiny_path: Path) -> None:
    engine = Engine.from_pretrained(tiny_path, max_batch_size=1, max_queue=1)
    # Greedy on this random model loops without ever emitting the stop token: a long request.
    long = dict(temperature=0, max_tokens=2000)

    async def go() -> None:
        first = engine.stream(request("long", **long))
        await first.__anext__()  # running: it holds the only row
        waiting = engine.stream(request("short", temperature=0, max_tokens=3))
        with pytest.raises(RateLimited) as err:
            engine.stream(request("one too many", max_tokens=3))
        assert err.value.retry_after > 0 and err.value.status_code == 429
        await first.aclose()  # a client disconnect
        texts, tokens, finals = await asyncio.wait_for(_collect(waiting), timeout=10)
        assert len(tokens[0]) <= 3 and finals
        # The row and the queue place are both free again.
        result = await asyncio.wait_for(
            engine.generate(request("after", temperature=0, max_tokens=3)), 10
        )
        assert result.choices[0].finish_reason in ("stop", "length")

    try:
        run(go())
    finally:
        engine.close()


def test_cancelling_the_awaiting_task_cancels_generate(tiny_path: Path) -> None:
    engine = Engine.from_pretrained(tiny_path, max_batch_size=1, max_queue=0)

    async def go() -> None:
        task = asyncio.create_task(engine.generate(request("long", temperature=0, max_tokens=2000)))
        await asyncio.sleep(0.2)
        assert not task.done(), "2000 greedy tokens take longer than 0.2 s"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # max_queue=0: this is only accepted once the cancelled request left its row.
        for _ in range(500):  # generous: the machine may be shared
            try:
                stream = engine.stream(request("next", temperature=0, max_tokens=2))
                break
            except RateLimited:
                await asyncio.sleep(0.02)
        await asyncio.wait_for(_collect(stream), timeout=10)

    try:
        run(go())
    finally:
        engine.close()


def test_close_fails_requests_in_flight(tiny_path: Path) -> None:
    engine = Engine.from_pretrained(tiny_path, device="cpu")

    async def go() -> None:
        stream = engine.stream(request("long", temperature=0, max_tokens=2000))
        await stream.__anext__()
        await asyncio.get_running_loop().run_in_executor(None, engine.close)
        with pytest.raises(Unavailable):
            async for _ in stream:
                pass

    run(go())
