"""Parsed grader configurations, one frozen dataclass per grader type.

Each keeps `config`, the dict it was parsed from, so `/validate` can echo it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ._formula import Formula

__all__ = [
    "Grader",
    "LabelModelGrader",
    "MultiGrader",
    "PythonGrader",
    "RemoteGrader",
    "ScoreModelGrader",
    "StringCheckGrader",
    "TextSimilarityGrader",
]


@dataclass(frozen=True, kw_only=True)
class _GraderBase:
    type: ClassVar[str]
    name: str
    config: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, kw_only=True)
class StringCheckGrader(_GraderBase):
    type: ClassVar[str] = "string_check"
    input: str
    reference: str
    operation: str


@dataclass(frozen=True, kw_only=True)
class TextSimilarityGrader(_GraderBase):
    type: ClassVar[str] = "text_similarity"
    input: str
    reference: str
    evaluation_metric: str


@dataclass(frozen=True, kw_only=True)
class ScoreModelGrader(_GraderBase):
    type: ClassVar[str] = "score_model"
    model: str
    input: list[dict[str, Any]]
    range: tuple[float, float] = (0.0, 1.0)
    sampling_params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class LabelModelGrader(_GraderBase):
    type: ClassVar[str] = "label_model"
    model: str
    input: list[dict[str, Any]]
    labels: tuple[str, ...]
    passing_labels: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class PythonGrader(_GraderBase):
    type: ClassVar[str] = "python"
    source: str


@dataclass(frozen=True, kw_only=True)
class MultiGrader(_GraderBase):
    type: ClassVar[str] = "multi"
    graders: dict[str, Grader]
    formula: Formula


@dataclass(frozen=True, kw_only=True)
class RemoteGrader(_GraderBase):
    """Bedrock's reward function: `lambda` (URL or ARN) or `endpoint` (URL).

    `headers` are secrets (Decision 8): sent, never echoed.
    """

    type: ClassVar[str] = "lambda"
    kind: str
    target: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def is_arn(self) -> bool:
        return self.target.startswith("arn:")


Grader = (
    StringCheckGrader
    | TextSimilarityGrader
    | ScoreModelGrader
    | LabelModelGrader
    | PythonGrader
    | MultiGrader
    | RemoteGrader
)
