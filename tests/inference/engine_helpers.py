"""Small helpers shared by the inference tests."""

from __future__ import annotations

import asyncio
from typing import Any

from openrft.inference import GenerationRequest, SamplingParams


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def request(
    prompt: str | list[int] | None = None, messages: Any = None, **sampling: Any
) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, messages=messages, sampling=SamplingParams(**sampling))


def chat_ids(tokenizer: Any, text: str) -> list[int]:
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )
    return list(tokenizer.encode(rendered, add_special_tokens=False))
