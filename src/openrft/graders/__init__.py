"""Graders: (sample, item) -> score, for the graders API and for training.

Every OpenAI grader type (string_check, text_similarity, score_model,
label_model, python in a sandbox, multi) and Bedrock's reward functions
(lambda, endpoint). The API layer calls `validate_grader` / `run_grader`; a
trainer calls `GradingService.grade_batch`.
"""

from __future__ import annotations

from pathlib import Path as _Path

from ._config import GraderSettings
from ._from_config import grader_settings
from ._math_answer import extract_final_answer, math_answer_score
from ._parse import parse_grader
from ._python_pool import SandboxPool, SandboxUnavailable
from ._result import ERROR_FLAGS, GraderErrors, GradeResult
from ._run import echo_config, run_grader, run_response, validate_grader
from ._sample import Sample
from ._service import GradingService
from ._similarity import Embedder
from ._spec import Grader

# The math grader's own file is valid python-grader source (stdlib only).
GSM8K_GRADER_SOURCE = (_Path(__file__).parent / "_math_answer.py").read_text()

__all__ = [
    "ERROR_FLAGS",
    "GSM8K_GRADER_SOURCE",
    "Embedder",
    "GradeResult",
    "Grader",
    "GraderErrors",
    "GraderSettings",
    "GradingService",
    "Sample",
    "SandboxPool",
    "SandboxUnavailable",
    "echo_config",
    "extract_final_answer",
    "grader_settings",
    "math_answer_score",
    "parse_grader",
    "run_grader",
    "run_response",
    "validate_grader",
]
