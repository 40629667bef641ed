"""Validation of one chat message, in the words of OpenAI's data-prep checks.

The error categories follow OpenAI's own SFT preparation script (openai-cookbook
`Chat_finetuning_data_prep.ipynb`): message_missing_key, message_unrecognized_key,
unrecognized_role, missing_content.
"""

from __future__ import annotations

from typing import Any

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MESSAGE_KEYS = frozenset(
    {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call", "refusal"}
)
PART_TYPES = frozenset({"text", "image_url", "input_text", "output_text"})


def message_problem(message: Any, index: int) -> str | None:
    """Describe what is wrong with `messages[index]`, or None when it is valid."""
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        return f"{where} is not an object"
    if "role" not in message:
        return f"{where} is missing the key 'role'"
    unknown = sorted(set(message) - MESSAGE_KEYS)
    if unknown:
        return f"{where} has an unrecognized key {unknown[0]!r}"
    role = message["role"]
    if role not in ROLES:
        return f"{where} has an unrecognized role {role!r} (expected one of {', '.join(sorted(ROLES))})"
    if "weight" in message and message["weight"] not in (0, 1):
        return f"{where}.weight must be 0 or 1"
    content = message.get("content")
    if content is None:
        if role == "assistant" and (message.get("tool_calls") or message.get("function_call")):
            return None
        return f"{where} is missing content"
    return _content_problem(content, where)


def _content_problem(content: Any, where: str) -> str | None:
    if isinstance(content, str):
        return None
    if not isinstance(content, list) or not content:
        return f"{where}.content must be a string or a non-empty list of content parts"
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in PART_TYPES:
            return f"{where}.content[{j}] is not a text or image content part"
        if part["type"] in ("text", "input_text", "output_text") and not isinstance(
            part.get("text"), str
        ):
            return f"{where}.content[{j}] is missing its text"
    return None


def message_text(message: dict[str, Any]) -> str:
    """The text of a message whose content may be a string or a list of parts."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict))
