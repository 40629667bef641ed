"""`/v1/chat/completions` and `/v1/completions` through the official SDK, on the tiny model.

Every response is validated with `openai.types`; sampling is kept short (the model is
random, so only shapes, reproducibility and constraints are checked, not content).
"""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

HI = [{"role": "user", "content": "Hi"}]


def _async_client(server) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)


def test_chat_non_streamed(client) -> None:
    r = client.chat.completions.create(model="tiny", messages=HI, max_tokens=8, seed=1)
    ChatCompletion.model_validate(r.model_dump())
    assert r.object == "chat.completion" and r.model == "tiny" and r.id.startswith("chatcmpl-")
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage and r.usage.completion_tokens <= 8 and r.usage.prompt_tokens > 0


def test_chat_streamed_with_usage(client) -> None:
    chunks = list(
        client.chat.completions.create(
            model="tiny",
            messages=HI,
            max_completion_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    for c in chunks:
        ChatCompletionChunk.model_validate(c.model_dump())
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.usage is None for c in chunks[:-1])
    last, usage_chunk = chunks[-2], chunks[-1]
    assert (
        last.choices[0].finish_reason in ("stop", "length")
        and last.choices[0].delta.content is None
    )
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert usage_chunk.usage.completion_tokens <= 8 and len(text) <= 8


def test_chat_stream_ends_with_done(serving_server) -> None:
    body = {"model": "tiny", "messages": HI, "max_tokens": 4, "stream": True}
    headers = {"Authorization": f"Bearer {serving_server.api_key}"}
    url = f"{serving_server.base_url}/chat/completions"
    with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)  # no `event:` lines for chat
    assert lines[-1] == "data: [DONE]"


def test_chat_stream_helper(client) -> None:
    with client.chat.completions.stream(model="tiny", messages=HI, max_tokens=6) as stream:
        kinds = {event.type for event in stream}
        # get_final_completion() refuses a "length" finish, likely for a random model.
        final = stream.current_completion_snapshot
    assert {"chunk", "content.done"} <= kinds
    ChatCompletion.model_validate(final.model_dump())
    assert final.choices[0].finish_reason in ("stop", "length")
    assert final.choices[0].message.role == "assistant"


def test_n_and_logprobs(client) -> None:
    r = client.chat.completions.create(
        model="tiny", messages=HI, n=3, max_tokens=5, logprobs=True, top_logprobs=2, seed=7
    )
    ChatCompletion.model_validate(r.model_dump())
    assert [c.index for c in r.choices] == [0, 1, 2]
    for choice in r.choices:
        assert choice.logprobs and choice.logprobs.content
        for token in choice.logprobs.content:
            assert token.logprob <= 0 and len(token.top_logprobs) == 2
    chunks = list(
        client.chat.completions.create(
            model="tiny", messages=HI, n=3, max_tokens=5, stream=True, logprobs=True
        )
    )
    for c in chunks:
        ChatCompletionChunk.model_validate(c.model_dump())
    finished = {c.choices[0].index for c in chunks if c.choices[0].finish_reason}
    assert finished == {0, 1, 2}


def test_json_schema_output_matches_the_schema(client) -> None:
    # Bounded values only: a random model writes strings and numbers of any length.
    schema = {
        "type": "object",
        "properties": {
            "answer": {"type": "string", "enum": ["yes", "no", "maybe"]},
            "n": {"enum": [1, 2, 3]},
            "ok": {"type": "boolean"},
        },
        "required": ["answer", "n", "ok"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "result", "schema": schema}}
    r = client.chat.completions.create(
        model="tiny", messages=HI, n=4, max_tokens=100, response_format=fmt, seed=3
    )
    for choice in r.choices:
        assert choice.finish_reason == "stop"
        value = json.loads(choice.message.content or "")
        assert set(value) == {"answer", "n", "ok"}
        assert value["answer"] in ("yes", "no", "maybe") and value["n"] in (1, 2, 3)
        assert isinstance(value["ok"], bool)
    obj = client.chat.completions.create(
        model="tiny", messages=HI, max_tokens=40, response_format={"type": "json_object"}
    )
    text = obj.choices[0].message.content or ""
    # The engine's json_object grammar is xgrammar's builtin JSON (an array is allowed too).
    assert text[:1] in ("{", "[")
    if obj.choices[0].finish_reason == "stop":
        json.loads(text)


def test_seeded_sampling_is_reproducible(client) -> None:
    def sample(seed: int) -> list[str]:
        r = client.chat.completions.create(
            model="tiny", messages=HI, n=2, max_tokens=12, seed=seed, temperature=1.0
        )
        return [c.message.content or "" for c in r.choices]

    assert sample(11) == sample(11)
    assert sample(11) != sample(12)


def test_stop_sequences(client) -> None:
    r = client.chat.completions.create(model="tiny", messages=HI, max_tokens=20, seed=5)
    text = r.choices[0].message.content or ""
    if len(text) >= 3:
        cut = client.chat.completions.create(
            model="tiny", messages=HI, max_tokens=20, seed=5, stop=[text[2]]
        )
        assert cut.choices[0].message.content == text[: text.index(text[2])]
        assert cut.choices[0].finish_reason == "stop"


def test_legacy_completions(client) -> None:
    r = client.completions.create(model="tiny", prompt="1+1=", max_tokens=5, logprobs=2, seed=2)
    Completion.model_validate(r.model_dump())
    assert r.object == "text_completion" and r.choices[0].logprobs
    assert len(r.choices[0].logprobs.tokens or []) == r.usage.completion_tokens
    chunks = list(
        client.completions.create(
            model="tiny",
            prompt="1+1=",
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    # Streamed chunks carry `finish_reason: null` until the last, as the live API sends them;
    # the SDK's `CompletionChoice` types it as required, so validate the others without it.
    for c in chunks:
        dumped = c.model_dump()
        for choice in dumped["choices"]:
            if choice["finish_reason"] is None:
                choice.pop("finish_reason")
        Completion.model_validate(dumped) if not dumped["choices"] else None
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-2].choices[0].finish_reason in ("stop", "length")


def test_errors(client) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="no-such-model", messages=HI)
    assert err.value.code == "model_not_found" and err.value.param == "model"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny", messages=HI, temperature=3.5)
    assert err.value.param == "temperature"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny", messages=HI, top_logprobs=3)
    assert err.value.param == "top_logprobs"
    too_long = [{"role": "user", "content": "x" * 2100}]  # 1 token a byte, 2,048 positions
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny", messages=too_long, stream=True)
    assert err.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny", messages=[{"role": "tool", "content": "x"}])
    assert err.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny", messages=[])
    assert err.value.param == "messages"


async def _stream_text(client: openai.AsyncOpenAI, i: int) -> tuple[str, str | None, int]:
    stream = await client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": f"request {i}"}],
        max_tokens=10,
        seed=i,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, tokens = "", None, 0
    async for chunk in stream:
        ChatCompletionChunk.model_validate(chunk.model_dump())
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    return text, finish, tokens


def test_sixteen_concurrent_streams(serving_server, client) -> None:
    async def run() -> list[tuple[str, str | None, int]]:
        async with _async_client(serving_server) as aclient:
            return await asyncio.gather(*(_stream_text(aclient, i) for i in range(16)))

    results = asyncio.run(run())
    assert all(finish in ("stop", "length") and 0 < tokens <= 10 for _, finish, tokens in results)
    # Batched together, each stream still equals its request served alone.
    alone = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "request 5"}], max_tokens=10, seed=5
    )
    assert results[5][0] == alone.choices[0].message.content


async def _fill_rows_then_burst(serving_server) -> tuple[list[object], list[object]]:
    """Hold every batch row with a long greedy 16-choice stream, send 3 more requests, then
    drop the stream: return what finished while it was held, and what finished after."""
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "xxxxxxxxxx"}],
        "n": 16,
        "max_tokens": 2000,
        "temperature": 0,
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {serving_server.api_key}"}
    url = f"{serving_server.base_url}/chat/completions"
    async with _async_client(serving_server) as aclient, httpx.AsyncClient(timeout=60) as http:
        async with http.stream("POST", url, json=body, headers=headers) as held:
            lines = held.aiter_lines()  # kept referenced: dropping it would close the stream
            seen = 0
            while seen <= 20:  # 16 role deltas, then tokens: its rows are running
                seen += bool(await anext(lines))
            tasks = [
                asyncio.create_task(
                    aclient.chat.completions.create(model="tiny", messages=HI, max_tokens=2)
                )
                for _ in range(3)
            ]
            done, pending = await asyncio.wait(tasks, timeout=30, return_when="FIRST_COMPLETED")
            await asyncio.sleep(0.5)
            done |= {t for t in pending if t.done()}
        # Leaving the block disconnects the held stream mid-way.
        rest = await asyncio.wait_for(
            asyncio.gather(*(t for t in tasks if t not in done), return_exceptions=True), 30
        )
    return [t.exception() or t.result() for t in done], list(rest)


def test_queue_bound_and_disconnect(serving_server, client) -> None:
    while_held, after = asyncio.run(_fill_rows_then_burst(serving_server))
    # Every row busy: two requests wait, the third is refused at once with Retry-After.
    assert len(while_held) == 1 and isinstance(while_held[0], openai.RateLimitError)
    assert while_held[0].response.headers["retry-after"] == "1"
    # The client that went away freed its rows at once (its 2,000 tokens would take minutes),
    # so the waiting requests ran.
    assert len(after) == 2 and all(isinstance(r, ChatCompletion) for r in after), after
    r = client.chat.completions.create(model="tiny", messages=HI, max_tokens=3)
    assert r.choices[0].finish_reason in ("stop", "length")
