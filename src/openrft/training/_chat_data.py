"""Turning chat examples into token ids, with a mask of the tokens the model learns.

Supervised loss falls on assistant turns only (and only those without `weight: 0`).
The mask is found by rendering the chat template turn by turn: the tokens an
assistant turn adds to the prompt that precedes it are that turn's tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["TokenizedExample", "chat_messages", "prompt_ids", "tokenize_conversation"]


@dataclass
class TokenizedExample:
    input_ids: list[int]
    loss_mask: list[bool]


def chat_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as chat templates expect them: content parts joined into one string."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        out.append({"role": m["role"], "content": content or ""})
    return out


def _render(
    tokenizer: Any, messages: list[dict[str, Any]], *, generation_prompt: bool
) -> list[int]:
    ids = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=generation_prompt, return_dict=False
    )
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    return list(ids)


def prompt_ids(tokenizer: Any, messages: list[dict[str, Any]]) -> list[int]:
    """The prompt of a reinforcement example, ending with the assistant's generation prompt."""
    return _render(tokenizer, chat_messages(messages), generation_prompt=True)


def tokenize_conversation(tokenizer: Any, messages: list[dict[str, Any]]) -> TokenizedExample:
    plain = chat_messages(messages)
    ids: list[int] = []
    mask: list[bool] = []
    for i, message in enumerate(plain):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, plain[:i], generation_prompt=True) if i else []
        after = _render(tokenizer, plain[: i + 1], generation_prompt=False)
        if after[: len(before)] != before or before[: len(ids)] != ids:
            raise ValueError("the chat template does not render turns as a prefix of the next")
        learn = messages[i].get("weight", 1) != 0
        mask += [False] * (len(before) - len(ids)) + [learn] * (len(after) - len(before))
        ids = after
    return TokenizedExample(input_ids=ids, loss_mask=mask)
