"""What a grader sees: the model's sample and the data line's item."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

__all__ = ["NOT_JSON", "Sample"]


class _NotJson:
    """Marks a sample whose text is not JSON (so `output_json` cannot be read)."""

    def __repr__(self) -> str:
        return "NOT_JSON"


NOT_JSON: Any = _NotJson()


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One completion to grade.

    Parameters:
        output_text: the assistant's answer.
        output_tools: its tool calls, shaped like `choices[0].message.tool_calls`.
        messages: the prompt conversation of the data line (lambda/endpoint graders
            append the answer to it).
        finish_reason: "length" marks a truncated sample.
        id: an id for the Lambda contract; generated per batch when None.
    """

    output_text: str
    output_tools: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    id: str | None = None

    @cached_property
    def output_json(self) -> Any:
        """The text parsed as JSON, or NOT_JSON; the runs API documents this rule."""
        try:
            return json.loads(self.output_text)
        except ValueError:
            return NOT_JSON

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"

    def assistant_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.output_text}
        if self.output_tools:
            message["tool_calls"] = self.output_tools
        return message

    def as_dict(self) -> dict[str, Any]:
        """The `sample` namespace of templates and of python graders [GRADERS-GUIDE]."""
        output_json = self.output_json
        return {
            "choices": [
                {
                    "index": 0,
                    "message": self.assistant_message(),
                    "finish_reason": self.finish_reason or "stop",
                }
            ],
            "output_text": self.output_text,
            "output_json": {} if output_json is NOT_JSON else output_json,
            "output_tools": self.output_tools,
            "output_audio": {},
        }
