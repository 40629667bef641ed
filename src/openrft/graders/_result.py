"""A grade and its detail record, with OpenAI's error flags.

The flag names are those of `metadata.errors` in the graders run response
(openai `GraderRunResponse.MetadataErrors`, reference §3).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

__all__ = ["ERROR_FLAGS", "GradeResult", "GraderErrors"]

ERROR_FLAGS = (
    "formula_parse_error",
    "sample_parse_error",
    "truncated_observation_error",
    "unresponsive_reward_error",
    "invalid_variable_error",
    "other_error",
    "python_grader_server_error",
    "python_grader_runtime_error",
    "model_grader_server_error",
    "model_grader_refusal_error",
    "model_grader_parse_error",
)


@dataclass(frozen=True, kw_only=True)
class GraderErrors:
    """OpenAI's error flags; `*_details` and `*_type` are text or None."""

    formula_parse_error: bool = False
    sample_parse_error: bool = False
    truncated_observation_error: bool = False
    unresponsive_reward_error: bool = False
    invalid_variable_error: bool = False
    other_error: bool = False
    python_grader_server_error: bool = False
    python_grader_server_error_type: str | None = None
    python_grader_runtime_error: bool = False
    python_grader_runtime_error_details: str | None = None
    model_grader_server_error: bool = False
    model_grader_refusal_error: bool = False
    model_grader_parse_error: bool = False
    model_grader_server_error_details: str | None = None

    @property
    def any(self) -> bool:
        return any(getattr(self, flag) for flag in ERROR_FLAGS)

    def merge(self, other: GraderErrors) -> GraderErrors:
        """Flags of either; the first non-null detail wins (multi graders)."""
        values = {}
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            values[f.name] = mine or theirs
        return GraderErrors(**values)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, kw_only=True)
class GradeResult:
    """The score of one sample and how it was reached.

    `token_usage` is the judge's total token count (int or None, as the SDK
    types it); `usage_per_model` keeps the full breakdown per judge model.
    `retries` counts extra attempts spent on transient failures.
    """

    name: str
    type: str
    score: float = 0.0
    errors: GraderErrors = field(default_factory=GraderErrors)
    sub_rewards: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    execution_time: float = 0.0
    token_usage: int | None = None
    usage_per_model: dict[str, dict[str, int]] = field(default_factory=dict)
    retries: int = 0

    @classmethod
    def failed(cls, *, name: str, type: str, **flags: Any) -> GradeResult:
        """A zero score with the given error flags set."""
        return cls(name=name, type=type, score=0.0, errors=GraderErrors(**flags))

    def timed(self, seconds: float) -> GradeResult:
        return replace(self, execution_time=seconds)
