"""Batch runners, one per grader type: (grader, samples, items, ctx) -> results.

Template failures become flags here (invalid_variable_error,
sample_parse_error), so no grader crashes a training step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from ._context import GradingContext
from ._formula import FormulaEvalError
from ._model_judge import judge
from ._python_pool import Outcome
from ._result import GraderErrors, GradeResult
from ._sample import Sample
from ._similarity import similarity
from ._spec import (
    Grader,
    LabelModelGrader,
    MultiGrader,
    PythonGrader,
    ScoreModelGrader,
    StringCheckGrader,
    TextSimilarityGrader,
)
from ._string_check import string_check
from ._templates import SampleParseError, TemplateVariableError

__all__ = ["BatchGrader", "grade_judge", "grade_local", "grade_multi", "grade_python"]

log = logging.getLogger(__name__)
Samples = list[Sample]
Items = list[dict[str, Any]]
BatchGrader = Callable[[Grader, Samples, Items], Awaitable[list[GradeResult]]]


def _template_failure(grader: Grader, exc: Exception) -> GradeResult:
    flag = "sample_parse_error" if isinstance(exc, SampleParseError) else "invalid_variable_error"
    return GradeResult.failed(name=grader.name, type=grader.type, **{flag: True})


async def grade_local(
    grader: StringCheckGrader | TextSimilarityGrader,
    samples: Samples,
    items: Items,
    ctx: GradingContext,
) -> list[GradeResult]:
    """string_check and text_similarity: pure CPU work, done inline."""
    results = []
    for sample, item in zip(samples, items, strict=True):
        try:
            if isinstance(grader, StringCheckGrader):
                score = string_check(grader, sample, item)
            else:
                score = similarity(grader, sample, item, ctx.embedder)
        except (TemplateVariableError, SampleParseError) as exc:
            results.append(_template_failure(grader, exc))
            continue
        except Exception:  # a metric library failing on odd text must not stop a step
            log.exception("grader %s failed", grader.name)
            results.append(GradeResult.failed(name=grader.name, type=grader.type, other_error=True))
            continue
        results.append(GradeResult(name=grader.name, type=grader.type, score=score))
    return results


async def grade_judge(
    grader: ScoreModelGrader | LabelModelGrader, samples: Samples, items: Items, ctx: GradingContext
) -> list[GradeResult]:
    async def one(sample: Sample, item: dict[str, Any]) -> GradeResult:
        try:
            return await judge(grader, sample, item, ctx)
        except (TemplateVariableError, SampleParseError) as exc:
            return _template_failure(grader, exc)

    return list(await asyncio.gather(*(one(s, i) for s, i in zip(samples, items, strict=True))))


def _from_outcome(grader: PythonGrader, outcome: Outcome) -> GradeResult:
    if outcome.error is None and outcome.score is not None:
        return GradeResult(name=grader.name, type=grader.type, score=float(outcome.score))
    if outcome.error == "runtime":
        errors = GraderErrors(
            python_grader_runtime_error=True, python_grader_runtime_error_details=outcome.details
        )
    else:  # timeout, worker_died, sandbox_unavailable: the grader's server failed it
        errors = GraderErrors(
            python_grader_server_error=True, python_grader_server_error_type=outcome.error
        )
    return GradeResult(name=grader.name, type=grader.type, errors=errors)


async def grade_python(
    grader: PythonGrader, samples: Samples, items: Items, ctx: GradingContext
) -> list[GradeResult]:
    tasks = [(s.as_dict(), dict(i)) for s, i in zip(samples, items, strict=True)]
    async with ctx.limit:
        outcomes = await ctx.pool.grade(grader.source, tasks)
    return [_from_outcome(grader, outcome) for outcome in outcomes]


def _sum_usage(results: list[GradeResult]) -> tuple[int | None, dict[str, dict[str, int]]]:
    total: int | None = None
    per_model: dict[str, dict[str, int]] = {}
    for result in results:
        if result.token_usage is not None:
            total = (total or 0) + result.token_usage
        for model, usage in result.usage_per_model.items():
            into = per_model.setdefault(model, {})
            for key, value in usage.items():
                into[key] = into.get(key, 0) + value
    return total, per_model


def _combine(grader: MultiGrader, parts: dict[str, GradeResult]) -> GradeResult:
    values = {key: part.score for key, part in parts.items()}
    errors = GraderErrors()
    metrics: dict[str, float] = {}
    for key, part in parts.items():
        errors = errors.merge(part.errors)
        metrics |= {f"{key}.{name}": value for name, value in part.metrics.items()}
    try:
        score = grader.formula.evaluate(values)
    except FormulaEvalError:
        score, errors = 0.0, replace(errors, formula_parse_error=True)
    token_usage, per_model = _sum_usage(list(parts.values()))
    return GradeResult(
        name=grader.name, type=grader.type, score=score, errors=errors, sub_rewards=values,
        metrics=metrics, token_usage=token_usage, usage_per_model=per_model,
        retries=sum(part.retries for part in parts.values()),
    )  # fmt: skip


async def grade_multi(
    grader: MultiGrader, samples: Samples, items: Items, grade_batch: BatchGrader
) -> list[GradeResult]:
    """Every sub-grader over the batch, concurrently, then the formula per sample."""
    keys = list(grader.graders)
    graded = await asyncio.gather(*(grade_batch(grader.graders[k], samples, items) for k in keys))
    return [
        _combine(grader, {k: graded[n][i] for n, k in enumerate(keys)}) for i in range(len(samples))
    ]
