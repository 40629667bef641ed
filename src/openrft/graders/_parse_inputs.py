"""Validation of the message lists that score_model and label_model send."""

from __future__ import annotations

from typing import Any

from openrft.errors import InvalidRequest

__all__ = ["check_keys", "parse_messages", "parse_sampling_params", "require"]

_ROLES = ("user", "assistant", "system", "developer")
_PART_FIELDS = {
    "input_text": {"text": str},
    "output_text": {"text": str},
    "input_image": {"image_url": str},
    "input_audio": {"input_audio": dict},
}
_SAMPLING_TYPES: dict[str, tuple[type, ...]] = {
    "seed": (int,),
    "top_p": (int, float),
    "temperature": (int, float),
    "max_completions_tokens": (int,),
    "reasoning_effort": (str,),
}


def require(config: dict[str, Any], key: str, kind: type | tuple[type, ...], param: str) -> Any:
    """`config[key]`, which must exist and be of `kind`."""
    if key not in config:
        raise InvalidRequest(f"missing required parameter {param}.{key}", param=f"{param}.{key}")
    value = config[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _tuple(kind)):
        names = " or ".join(k.__name__ for k in _tuple(kind))
        raise InvalidRequest(f"{param}.{key} must be of type {names}", param=f"{param}.{key}")
    return value


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def check_keys(config: dict[str, Any], allowed: set[str], param: str) -> None:
    """Refuse keys OpenAI's schema does not have, so typos fail loudly."""
    for key in config:
        if key not in allowed:
            raise InvalidRequest(
                f"unknown parameter {param}.{key} (allowed: {', '.join(sorted(allowed))})",
                param=f"{param}.{key}",
            )


def _parse_part(part: Any, param: str) -> None:
    if not isinstance(part, dict):
        raise InvalidRequest(f"{param} must be an object", param=param)
    kind = require(part, "type", str, param)
    if kind not in _PART_FIELDS:
        raise InvalidRequest(
            f"{param}.type must be one of {', '.join(_PART_FIELDS)}", param=f"{param}.type"
        )
    for key, value_type in _PART_FIELDS[kind].items():
        require(part, key, value_type, param)


def parse_messages(value: Any, param: str) -> list[dict[str, Any]]:
    """Check `input`: a non-empty list of `{role, content, type?}` messages."""
    if not isinstance(value, list) or not value:
        raise InvalidRequest(f"{param} must be a non-empty list of messages", param=param)
    for index, message in enumerate(value):
        where = f"{param}[{index}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where} must be an object", param=where)
        check_keys(message, {"role", "content", "type"}, where)
        if require(message, "role", str, where) not in _ROLES:
            raise InvalidRequest(
                f"{where}.role must be one of {', '.join(_ROLES)}", param=f"{where}.role"
            )
        if message.get("type", "message") != "message":
            raise InvalidRequest(f"{where}.type must be 'message'", param=f"{where}.type")
        content = require(message, "content", (str, dict, list), where)
        parts = (
            content if isinstance(content, list) else [content] if isinstance(content, dict) else []
        )
        for part_index, part in enumerate(parts):
            _parse_part(part, f"{where}.content[{part_index}]")
    return value


def parse_sampling_params(value: Any, param: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"{param} must be an object", param=param)
    check_keys(value, set(_SAMPLING_TYPES), param)
    for key, kinds in _SAMPLING_TYPES.items():
        if key in value and value[key] is not None:
            require(value, key, kinds, param)
    return value
